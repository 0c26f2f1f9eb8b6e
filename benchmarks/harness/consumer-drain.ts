import { performance } from 'node:perf_hooks';
import { round } from './stats';

/** What a drain needs of ResourceMonitor: a window opened at the first message, closed at the last. */
export interface DrainWindow {
  start(): void;
  stop(): void;
}

/**
 * Counts one consumer drain of an `n`-message backlog (consumer-throughput): the clock and the
 * resource window start at the first message handed over and stop once `n` distinct messages
 * were, so connecting and joining a consumer group are not timed. A message id seen again is a
 * redelivery: counted in `duplicates`, not toward `n`.
 */
export class DrainCounter {
  t0 = NaN;
  t1 = NaN;
  hits = 0;
  duplicates = 0;
  private readonly seen = new Set<string>();
  private finish: () => void = () => undefined;
  /** Resolves once `n` distinct messages were handed over. */
  readonly done = new Promise<void>((resolve) => (this.finish = resolve));

  constructor(
    private readonly n: number,
    private readonly window: DrainWindow,
    /** The caller calls `end()` itself (the inbox side: once the last transaction committed). */
    private readonly endsItself: boolean,
  ) {}

  /** One message handed to the handler; without an id every call counts as a distinct message. */
  hit = (id?: string): void => {
    if (this.hits === 0) {
      this.t0 = performance.now();
      this.window.start();
    }
    this.hits++;
    if (id !== undefined) {
      if (this.seen.has(id)) {
        this.duplicates++;
        return;
      }
      this.seen.add(id);
    }
    if ((id === undefined ? this.hits : this.seen.size) === this.n) {
      if (!this.endsItself) this.end();
      this.finish();
    }
  };

  /** Stops the clock and the resource window. */
  end(): void {
    this.t1 = performance.now();
    this.window.stop();
  }
}

/** CPU time per message in µs, from a % of one core measured over `elapsedMs`; null stays null. */
export function cpuUsPerMessage(
  pctOfCore: number | null,
  elapsedMs: number,
  messages: number,
): number | null {
  if (pctOfCore === null || messages <= 0) return null;
  return round(((pctOfCore / 100) * elapsedMs * 1000) / messages, 1);
}
