/**
 * Scenario (b): N consumer processes with the inbox on one queue / consumer group / durable
 * consumer. Per broker and process count: a fresh topic / queue / stream filled with M messages
 * (1,000 keys) before any consumer runs; the consumers subscribed together (one group) and timed
 * until M effects are committed; then checked: every message's effect exactly once, one inbox
 * row per message.
 */
import type pg from 'pg';
import { uuidv7, type BrokerMessage } from '@sage/saga-outbox';
import { RabbitMqBroker } from '@sage/saga-outbox/rabbitmq';
import { brokerTargets, type BrokerKind, type BrokerTarget } from '../harness/brokers';
import { BENCH_KEYS, BENCH_TYPE, benchPayload } from '../harness/outbox-load';
import type { Fleet } from './fleet';
import { expectCounts, measureRound } from './measure-round';
import type { ScalingPoint } from './results';
import { COUNT, count, resetScalingTables } from './scaling-tables';

const FILL_BATCH = 500;

/**
 * Publishes `messages` bench messages through the Sage adapter (which also provisions the NATS
 * stream and, for RabbitMQ, the group's queue first so the messages are routed to it).
 */
async function fill(target: BrokerTarget, group: string, messages: number): Promise<void> {
  const adapter = target.sage();
  try {
    if (adapter instanceof RabbitMqBroker) await adapter.declareQueue(target.destination, group);
    for (let from = 0; from < messages; from += FILL_BATCH) {
      const batch: BrokerMessage[] = [];
      for (let n = from; n < Math.min(messages, from + FILL_BATCH); n++)
        batch.push({
          id: uuidv7(),
          destination: target.destination,
          key: `customer-${n % BENCH_KEYS}`,
          type: BENCH_TYPE,
          payload: benchPayload(n),
          headers: {},
          time: new Date(),
        });
      const failed = (await adapter.publish(batch)).find((r) => !r.ok);
      if (failed && !failed.ok) throw new Error(`filling the broker failed: ${failed.error}`);
    }
  } finally {
    await adapter.close();
  }
}

export async function consumerRounds(args: {
  fleet: Fleet;
  admin: pg.Client;
  monitor: pg.Client;
  runId: string;
  broker: BrokerKind;
  processCounts: number[];
  messages: number;
  log: (line: string) => void;
}): Promise<ScalingPoint[]> {
  const { fleet, admin, monitor, broker, messages, log } = args;
  const points: ScalingPoint[] = [];
  for (const n of args.processCounts) {
    const { targets } = brokerTargets(`${args.runId}-consumer-${broker}-${n}`, {
      ...process.env,
      SAGE_BENCH_BROKERS: broker,
    });
    const target = targets[0];
    if (!target) throw new Error(`${broker} is not configured (see scripts/services.sh env)`);
    const group = `scaling-consumers-${n}`;
    await target.setup();
    try {
      await resetScalingTables(admin);
      await fill(target, group, messages);
      await fleet.command(n, 'prepare', {
        brokerUrl: target.url,
        destination: target.destination,
        group,
      });
      const point = await measureRound(fleet, monitor, {
        scenario: 'consumer',
        broker,
        processes: n,
        items: messages,
        doneSql: COUNT.effects,
        check: async (stopped) => {
          const sum = (k: string): number => stopped.reduce((a, s) => a + Number(s[k] ?? 0), 0);
          // Let late duplicates (redeliveries after the count was reached) land before counting.
          await new Promise((resolve) => setTimeout(resolve, 300));
          const effects = await count(monitor, COUNT.effects);
          const distinct = await count(monitor, COUNT.distinctEffects);
          const inboxRows = await count(monitor, COUNT.inboxRows);
          const busyConsumers = await count(monitor, COUNT.effectWorkers);
          return expectCounts(
            {
              effects,
              distinctEffects: distinct,
              inboxRows,
              busyConsumers,
              processed: sum('processed'),
              duplicatesSkipped: sum('duplicates'),
              handlerFailures: sum('failed'),
            },
            [
              ['effects', effects, messages],
              ['distinct effects', distinct, messages],
              ['inbox rows', inboxRows, messages],
            ],
          );
        },
      });
      log(
        `  consumer ${broker} ×${n}: ${point.perSec}/s in ${point.elapsedMs} ms (first after ${point.firstItemMs} ms)` +
          `${point.error ? ` FAILED ${point.error}` : ''}${point.checks.ok ? '' : ` checks: ${point.checks.problems.join('; ')}`}`,
      );
      points.push(point);
    } finally {
      await target.teardown().catch((error: unknown) => log(`  teardown: ${String(error)}`));
    }
  }
  return points;
}
