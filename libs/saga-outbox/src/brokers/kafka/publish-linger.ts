import type { BrokerMessage, PublishResult } from '../../core/ports/broker';
import { raceAbort } from '../../core/race-abort';

interface Waiting {
  readonly batch: readonly BrokerMessage[];
  readonly resolve: (results: PublishResult[]) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Kafka's `linger.ms` on the client side: publishes arriving within `lingerMs` of the first one
 * are sent together by one `send` call (so one produce request per topic), and each caller gets
 * back its own messages' results, in its own order. A window holding `flushAt` messages or more
 * goes at once. Abort stops a caller's waiting, not the send: its messages are reported failed,
 * retryable, whatever the broker later says (at-least-once, as for an unlingered publish).
 */
export class PublishLinger {
  private waiting: Waiting[] = [];
  private messages = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly lingerMs: number,
    private readonly flushAt: number,
    private readonly send: (batch: readonly BrokerMessage[]) => Promise<PublishResult[]>,
  ) {}

  async publish(batch: readonly BrokerMessage[], signal?: AbortSignal): Promise<PublishResult[]> {
    const results = new Promise<PublishResult[]>((resolve, reject) =>
      this.waiting.push({ batch, resolve, reject }),
    );
    this.messages += batch.length;
    if (this.messages >= this.flushAt) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.lingerMs);
    return (
      (await raceAbort(results, signal)) ??
      batch.map((m) => ({
        id: m.id,
        ok: false,
        error: 'publish aborted before the broker acknowledged',
        retryable: true,
      }))
    );
  }

  /** Sends what waits now (the timer, a full window, or the broker closing). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const group = this.waiting;
    this.waiting = [];
    this.messages = 0;
    if (!group.length) return;
    this.send(group.flatMap((w) => w.batch)).then(
      (results) => {
        let at = 0;
        for (const w of group) {
          w.resolve(results.slice(at, at + w.batch.length));
          at += w.batch.length;
        }
      },
      (error: unknown) => group.forEach((w) => w.reject(error)),
    );
  }
}
