import { performance } from 'node:perf_hooks';
import type { BrokerMessage } from '@sage/saga-outbox';
import type { RawPublisher } from './brokers';

/**
 * The 'direct' variant of outbox-commit-to-ack: the raw client publishing messages as the producer
 * makes them, no database. A message is sent at once when fewer than `callsInFlight` publish calls
 * are outstanding; otherwise it waits and goes with the others that queued meanwhile, in calls of at
 * most `batchSize` (the relay's publish window): at a low rate every message travels alone, at a
 * high rate they coalesce, as a producer with a send buffer would. `onAcked` gets each message id
 * with the instant its call resolved.
 */
export class DirectSender {
  private readonly queue: BrokerMessage[] = [];
  private inFlight = 0;
  failedMessages = 0;
  calls = 0;

  constructor(
    private readonly raw: RawPublisher,
    private readonly onAcked: (id: string, at: number) => void,
    private readonly callsInFlight: number,
    private readonly batchSize: number,
  ) {}

  send(message: BrokerMessage): void {
    this.queue.push(message);
    this.pump();
  }

  private pump(): void {
    while (this.inFlight < this.callsInFlight && this.queue.length) {
      const batch = this.queue.splice(0, this.batchSize);
      this.inFlight++;
      this.calls++;
      this.raw
        .publish(batch)
        .then(
          () => {
            const at = performance.now();
            for (const m of batch) this.onAcked(m.id, at);
          },
          () => {
            this.failedMessages += batch.length;
          },
        )
        .finally(() => {
          this.inFlight--;
          this.pump();
        });
    }
  }
}
