import { InvalidOptionsError } from '../errors';
import type { Clock } from '../ports/clock';
import type { SageLogger } from '../ports/logger';
import { AuditSealer, type AuditSealStore } from './audit-sealer';

/** An audit log in memory: `pending` entries waiting, sealed into `sealed` in batches. */
class MemoryAuditSealStore implements AuditSealStore {
  pending = 0;
  sealed = 0;
  batches: number[] = [];
  prunes: Date[] = [];
  /** Another process holds the sealer lock. */
  locked = false;
  /** The next sealBatch calls that fail (a database outage). */
  failures = 0;

  sealBatch(limit: number): Promise<number | null> {
    if (this.failures > 0) {
      this.failures--;
      return Promise.reject(new Error('connection refused'));
    }
    if (this.locked) return Promise.resolve(null);
    const n = Math.min(limit, this.pending);
    this.pending -= n;
    this.sealed += n;
    this.batches.push(n);
    return Promise.resolve(n);
  }

  prune(keepAfter: Date): Promise<number | null> {
    this.prunes.push(keepAfter);
    return Promise.resolve(this.sealed || null);
  }
}

/** Virtual time whose sleeps pass at once, but on a later macrotask (so a test can stop the loop). */
function virtualClock(): Clock & { sleeps: number[]; advance(ms: number): void } {
  let now = 1_000_000;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => now,
    advance: (ms) => {
      now += ms;
    },
    sleep: (ms, signal) =>
      new Promise<void>((resolve, reject) => {
        if (signal?.aborted) return reject(signal.reason as Error);
        sleeps.push(ms);
        now += ms;
        setImmediate(() => (signal?.aborted ? reject(signal.reason as Error) : resolve()));
      }),
  };
}

function recordingLogger(): SageLogger & { lines: { level: string; message: string }[] } {
  const lines: { level: string; message: string }[] = [];
  const at = (level: string) => (message: string) => void lines.push({ level, message });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !condition(); i++)
    await new Promise<void>((resolve) => setImmediate(resolve));
  expect(condition()).toBe(true);
}

describe('AuditSealer', () => {
  it('seals the backlog in batches until a short batch, counting what it sealed', async () => {
    const store = new MemoryAuditSealStore();
    store.pending = 1200;
    const sealer = new AuditSealer({ store, batchSize: 500 });

    await expect(sealer.runOnce()).resolves.toEqual({ leader: true, sealed: 1200 });
    expect(store.batches).toEqual([500, 500, 200]);
    expect(sealer.stats.sealedTotal).toBe(1200);
    await expect(sealer.runOnce()).resolves.toEqual({ leader: true, sealed: 0 });
  });

  it('stops a run after maxBatchesPerRun batches; the next run goes on', async () => {
    const store = new MemoryAuditSealStore();
    store.pending = 50;
    const sealer = new AuditSealer({ store, batchSize: 10, maxBatchesPerRun: 2 });

    await sealer.runOnce();
    expect(store.sealed).toBe(20);
    await sealer.runOnce();
    expect(store.sealed).toBe(40);
  });

  it('skips the run when another process holds the sealer lock, and does not prune then', async () => {
    const store = new MemoryAuditSealStore();
    store.pending = 5;
    store.locked = true;
    const sealer = new AuditSealer({ store, retentionMs: 1000 });

    await expect(sealer.runOnce()).resolves.toEqual({ leader: false, sealed: 0 });
    expect(store.pending).toBe(5);
    expect(store.prunes).toEqual([]);
  });

  it('never prunes without retentionMs', async () => {
    const store = new MemoryAuditSealStore();
    store.pending = 3;
    const sealer = new AuditSealer({ store, pruneIntervalMs: 1 });

    await sealer.runOnce();
    await sealer.runOnce();
    expect(store.sealed).toBe(3);
    expect(store.prunes).toEqual([]);
  });

  it('with retentionMs, prunes entries older than that, at most every pruneIntervalMs', async () => {
    const store = new MemoryAuditSealStore();
    store.pending = 3;
    const clock = virtualClock();
    const sealer = new AuditSealer({
      store,
      retentionMs: 60_000,
      pruneIntervalMs: 3_600_000,
      clock,
    });

    const first = await sealer.runOnce();
    expect(first).toEqual({ leader: true, sealed: 3, checkpoint: 3 });
    expect(store.prunes.map((d) => d.getTime())).toEqual([clock.now() - 60_000]);

    clock.advance(3_599_000);
    await sealer.runOnce();
    expect(store.prunes).toHaveLength(1);

    clock.advance(1_000);
    await sealer.runOnce();
    expect(store.prunes.map((d) => d.getTime())).toEqual([
      1_000_000 - 60_000,
      1_000_000 + 3_600_000 - 60_000,
    ]);
  });

  it('counts, logs and backs off on errors, then recovers and seals everything', async () => {
    const store = new MemoryAuditSealStore();
    store.pending = 7;
    store.failures = 3;
    const clock = virtualClock();
    const logger = recordingLogger();
    const sealer = new AuditSealer({ store, sealIntervalMs: 1000, clock, logger });

    sealer.start();
    await until(() => store.sealed === 7);
    await sealer.stop();

    expect(sealer.stats.loop.errors).toBe(3);
    expect(sealer.stats.loop.lastError).toMatch(/connection refused/);
    // 1 s after the first failure, doubling while they last.
    expect(clock.sleeps.slice(0, 3)).toEqual([1000, 2000, 4000]);
    expect(logger.lines).toEqual(
      expect.arrayContaining([
        { level: 'error', message: 'audit-sealer tick failed' },
        { level: 'info', message: 'audit-sealer recovered after 3 failed ticks' },
      ]),
    );
    expect(sealer.stats.sealedTotal).toBe(7);
  });

  it('stops on stop(): no batch is sealed after it resolves', async () => {
    const store = new MemoryAuditSealStore();
    const clock = virtualClock();
    const sealer = new AuditSealer({ store, batchSize: 10, clock });

    sealer.start();
    store.pending = 5;
    await until(() => store.sealed === 5);
    await sealer.stop();
    const calls = store.batches.length;

    store.pending = 5;
    for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    expect(store.batches).toHaveLength(calls);
    expect(store.pending).toBe(5);
  });

  it('refuses bad tuning, naming the option', () => {
    const store = new MemoryAuditSealStore();
    expect(() => new AuditSealer({ store, batchSize: 0 })).toThrow(InvalidOptionsError);
    expect(() => new AuditSealer({ store, batchSize: 0 })).toThrow(/audit\.batchSize/);
    expect(() => new AuditSealer({ store, sealIntervalMs: -1 })).toThrow(/audit\.sealIntervalMs/);
    expect(() => new AuditSealer({ store, retentionMs: 0 })).toThrow(/audit\.retentionMs/);
  });
});
