import { SingleFlightLoop, type SingleFlightLoopOptions } from './loop';
import type { Clock } from './ports/clock';
import type { SageLogger } from './ports/logger';

/** Virtual time: every sleep the loop takes is recorded and passes at once. */
function virtualClock(): Clock & { sleeps: number[] } {
  let now = 1_000_000;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => now,
    sleep: (ms, signal) => {
      if (signal?.aborted) return Promise.reject(signal.reason as Error);
      sleeps.push(ms);
      now += ms;
      return Promise.resolve();
    },
  };
}

interface Line {
  level: keyof SageLogger;
  message: string;
  fields: Record<string, unknown>;
}

function recordingLogger(): SageLogger & { lines: Line[] } {
  const lines: Line[] = [];
  const at =
    (level: keyof SageLogger) =>
    (message: string, fields: Record<string, unknown> = {}): void => {
      lines.push({ level, message, fields });
    };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/**
 * Runs a loop whose ticks follow `outcomes` (true: succeeds, false: throws) and stops it after the
 * last one; returns the waits it took and what it logged.
 */
async function runTicks(
  outcomes: boolean[],
  options: Partial<SingleFlightLoopOptions> = {},
): Promise<{ sleeps: number[]; lines: Line[]; loop: SingleFlightLoop }> {
  const clock = virtualClock();
  const logger = recordingLogger();
  const stop = new AbortController();
  let i = 0;
  const loop = new SingleFlightLoop({
    name: 'test-loop',
    intervalMs: 1000,
    clock,
    logger,
    ...options,
    tick: () => {
      const ok = outcomes[i++];
      if (i >= outcomes.length) stop.abort();
      return ok ? Promise.resolve() : Promise.reject(new Error(`connection refused ${i}`));
    },
  });
  loop.start(stop.signal);
  await loop.stopped();
  return { sleeps: clock.sleeps, lines: logger.lines, loop };
}

const failing = (n: number): boolean[] => Array.from({ length: n }, () => false);

describe('SingleFlightLoop', () => {
  it('backs off failed ticks from firstMs, doubling up to maxMs, and returns to its interval after a success', async () => {
    const { sleeps, loop } = await runTicks([true, ...failing(7), true, true], {
      errorBackoff: { firstMs: 100, maxMs: 500 },
    });
    expect(sleeps).toEqual([1000, 100, 200, 400, 500, 500, 500, 500, 1000]);
    expect(loop.stats).toMatchObject({ ticks: 3, errors: 7, consecutiveErrors: 0 });
  });

  it('by default (maintenance loops) backs off from its interval up to a minute', async () => {
    const { sleeps } = await runTicks([...failing(8), true], { intervalMs: 5000 });
    expect(sleeps).toEqual([5000, 10_000, 20_000, 40_000, 60_000, 60_000, 60_000, 60_000]);
    const { sleeps: long } = await runTicks([...failing(3), true], { intervalMs: 90_000 });
    expect(long).toEqual([90_000, 90_000, 90_000]); // never faster than its own interval
  });

  it('logs a run of failures when it begins, then at most every errorLogIntervalMs, and when it ends, with the count', async () => {
    // 100 ms, then 200, 400 and 500 ms apart: 25 failures span 11.2 s of (virtual) time.
    const { lines } = await runTicks([...failing(25), true, ...failing(2), true], {
      errorBackoff: { firstMs: 100, maxMs: 500 },
      errorLogIntervalMs: 5000,
    });
    const errors = lines.filter((l) => l.level === 'error');
    expect(errors.map((l) => l.fields.consecutiveErrors)).toEqual([1, 13, 23, 1]);
    expect(errors[0]).toMatchObject({
      message: 'test-loop tick failed',
      fields: {
        event: 'test-loop.error',
        error: 'connection refused 1',
        failingForMs: 0,
        retryInMs: 100,
      },
    });
    expect(errors[1]).toMatchObject({
      message: 'test-loop still failing (13 ticks in a row)',
      fields: { event: 'test-loop.error', error: 'connection refused 13', failingForMs: 5200 },
    });
    // The failures in between are at debug, so nothing is lost for whoever turns it on.
    expect(lines.filter((l) => l.level === 'debug')).toHaveLength(25 + 2 - 4);
    expect(lines.filter((l) => l.level === 'info')).toEqual([
      {
        level: 'info',
        message: 'test-loop recovered after 25 failed ticks',
        fields: {
          event: 'test-loop.recovered',
          failedTicks: 25,
          failingForMs: 11_700,
          lastError: 'connection refused 25',
        },
      },
      expect.objectContaining({ fields: expect.objectContaining({ failedTicks: 2 }) as unknown }),
    ]);
  });

  it('wake() cuts an error backoff short', async () => {
    const logger = recordingLogger();
    const stop = new AbortController();
    let ticks = 0;
    const loop = new SingleFlightLoop({
      name: 'woken',
      intervalMs: 60_000,
      errorBackoff: { firstMs: 60_000, maxMs: 60_000 },
      clock: {
        now: () => Date.now(),
        // Real waiting (a minute) that only the wake can cut short.
        sleep: (_ms, signal) =>
          new Promise((_resolve, reject) =>
            signal?.addEventListener('abort', () => reject(signal.reason as Error), {
              once: true,
            }),
          ),
      },
      logger,
      tick: () => {
        ticks++;
        if (ticks === 2) stop.abort();
        return Promise.reject(new Error('down'));
      },
    });
    loop.start(stop.signal);
    await new Promise((resolve) => setImmediate(resolve));
    expect(ticks).toBe(1);
    loop.wake();
    await loop.stopped();
    expect(ticks).toBe(2);
  });
});
