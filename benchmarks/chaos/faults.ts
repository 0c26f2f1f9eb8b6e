/**
 * The faults of a chaos run, injected for real while messages flow:
 *
 * - `relay-kill`: kill -9 of one standalone relay process every `faultIntervalMs` (± 25 %), then
 *   a new one after `relayDowntimeMs`. The rows it had claimed stay claimed until their lease
 *   expires; the outbox ids claimed at the moment of the kill are kept to measure that.
 * - the heavy faults, one every `heavyIntervalMs` (± 25 %), in a seeded order that goes through
 *   every enabled type before repeating one: `broker-restart` (services.sh restart <broker>),
 *   `pg-restart` (fast shutdown and start), `pg-kill` (kill -9 of the postmaster, then start:
 *   crash recovery), and the optional `producer-kill` / `consumer-kill` (kill -9 of a service A /
 *   service B replica, then a new one).
 *
 * A fault "ends" when what it broke is back: the server accepts connections again, the new
 * process reported ready. Recovery times are measured from there (checker.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { jitter, randomInt, seededRandom, subSeed, type Random } from './rng';

export type FaultType =
  'relay-kill' | 'broker-restart' | 'pg-restart' | 'pg-kill' | 'producer-kill' | 'consumer-kill';

export const FAULT_TYPES: readonly FaultType[] = [
  'relay-kill',
  'broker-restart',
  'pg-restart',
  'pg-kill',
  'producer-kill',
  'consumer-kill',
];
export const DEFAULT_FAULTS: readonly FaultType[] = [
  'relay-kill',
  'broker-restart',
  'pg-restart',
  'pg-kill',
];

export interface FaultRecord {
  n: number;
  type: FaultType;
  /** Which process or server. */
  target: string;
  startedAt: number;
  /** When what it broke was back (null: it never came back, see `error`). */
  endedAt: number | null;
  error?: string;
  /** relay-kill: outbox rows in `claimed` when the relay died (its own claims among them). */
  claimedAtKill?: number;
}

/** What the injector acts on (the scenario's processes and servers). */
export interface FaultTargets {
  relays: number;
  producers: number;
  consumers: number;
  killRelay(i: number): Promise<void>;
  startRelay(i: number): Promise<void>;
  killProducer(i: number): Promise<void>;
  startProducer(i: number): Promise<void>;
  killConsumer(i: number): Promise<void>;
  startConsumer(i: number): Promise<void>;
  restartBroker(): Promise<void>;
  restartPostgres(): Promise<void>;
  killPostgres(): Promise<void>;
  /** Ids of the outbox rows claimed right now (service A's database); undefined if it is down. */
  claimedIds(): Promise<string[] | undefined>;
}

export interface FaultPlan {
  faults: readonly FaultType[];
  faultIntervalMs: number;
  heavyIntervalMs: number;
  relayDowntimeMs: number;
  seed: number;
}

export class FaultInjector {
  readonly records: FaultRecord[] = [];
  /** relay-kill record number → outbox ids claimed at the kill (kept out of the JSON results). */
  readonly claimedAtKill = new Map<number, string[]>();
  /** One stream per loop, so each loop's choices repeat with the seed whatever the other does. */
  private readonly relayRandom: Random;
  private readonly heavyRandom: Random;
  private readonly stopping = new AbortController();
  private loops: Promise<void>[] = [];
  private heavyOrder: FaultType[] = [];

  constructor(
    private readonly plan: FaultPlan,
    private readonly targets: FaultTargets,
    private readonly log: (line: string) => void,
  ) {
    this.relayRandom = seededRandom(subSeed(plan.seed, 1));
    this.heavyRandom = seededRandom(subSeed(plan.seed, 2));
  }

  start(): void {
    if (this.plan.faults.includes('relay-kill') && this.targets.relays > 0)
      this.loops.push(
        this.loop(this.plan.faultIntervalMs, this.relayRandom, () => this.relayKill()),
      );
    if (this.plan.faults.some((f) => f !== 'relay-kill'))
      this.loops.push(this.loop(this.plan.heavyIntervalMs, this.heavyRandom, () => this.heavy()));
  }

  /** No new faults; resolves once the ones under way have ended (their servers / processes back). */
  async stop(): Promise<void> {
    this.stopping.abort();
    await Promise.all(this.loops);
  }

  private async loop(
    intervalMs: number,
    random: Random,
    fault: () => Promise<void>,
  ): Promise<void> {
    for (;;) {
      try {
        await sleep(jitter(random, intervalMs), undefined, { signal: this.stopping.signal });
      } catch {
        return; // stopped
      }
      await fault();
    }
  }

  private nextHeavy(): FaultType {
    if (!this.heavyOrder.length) {
      const types = this.plan.faults.filter((f) => f !== 'relay-kill');
      // A seeded shuffle: every enabled type once per round.
      for (let i = types.length - 1; i > 0; i--) {
        const j = randomInt(this.heavyRandom, i + 1);
        [types[i], types[j]] = [types[j]!, types[i]!];
      }
      this.heavyOrder = types;
    }
    return this.heavyOrder.shift()!;
  }

  private async record(
    type: FaultType,
    target: string,
    act: (record: FaultRecord) => Promise<void>,
  ): Promise<void> {
    const record: FaultRecord = {
      n: this.records.length + 1,
      type,
      target,
      startedAt: Date.now(),
      endedAt: null,
    };
    this.records.push(record);
    this.log(`fault #${record.n} ${type} ${target}`);
    try {
      await act(record);
      record.endedAt = Date.now();
      this.log(
        `fault #${record.n} ${type} ${target}: back after ${record.endedAt - record.startedAt} ms`,
      );
    } catch (error) {
      record.error = error instanceof Error ? error.message : String(error);
      this.log(`fault #${record.n} ${type} ${target}: FAILED to recover: ${record.error}`);
    }
  }

  private relayKill(): Promise<void> {
    const i = randomInt(this.relayRandom, this.targets.relays);
    return this.record('relay-kill', `relay-${i + 1}`, async (record) => {
      await this.targets.killRelay(i);
      const claimed = await this.targets.claimedIds();
      if (claimed) {
        record.claimedAtKill = claimed.length;
        this.claimedAtKill.set(record.n, claimed);
      }
      await sleep(this.plan.relayDowntimeMs);
      await this.targets.startRelay(i);
    });
  }

  private heavy(): Promise<void> {
    const type = this.nextHeavy();
    const t = this.targets;
    switch (type) {
      case 'broker-restart':
        return this.record(type, 'broker', () => t.restartBroker());
      case 'pg-restart':
        return this.record(type, 'postgres', () => t.restartPostgres());
      case 'pg-kill':
        return this.record(type, 'postgres', () => t.killPostgres());
      case 'producer-kill': {
        const i = randomInt(this.heavyRandom, t.producers);
        return this.record(type, `service-a-${i + 1}`, async () => {
          await t.killProducer(i);
          await t.startProducer(i);
        });
      }
      case 'consumer-kill': {
        const i = randomInt(this.heavyRandom, t.consumers);
        return this.record(type, `service-b-${i + 1}`, async () => {
          await t.killConsumer(i);
          await t.startConsumer(i);
        });
      }
      case 'relay-kill':
        return this.relayKill();
    }
  }
}
