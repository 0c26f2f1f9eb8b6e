/**
 * Scenario (a): N relay processes draining one outbox backlog to a real broker. Per broker and
 * process count: a fresh topic / exchange+queue / stream; N pending messages (1,000 keys, round
 * robin) committed; the relays started together and timed until every row is `sent`; then the
 * broker read back and checked: every message there, per-key order kept.
 */
import type pg from 'pg';
import { brokerTargets, type BrokerKind } from '../harness/brokers';
import { BENCH_KEYS, OUTBOX_TABLES, preloadOutbox } from '../harness/outbox-load';
import type { Fleet } from './fleet';
import { expectCounts, measureRound, roundTimeoutMs } from './measure-round';
import { checkPerKeyOrder } from './per-key-order';
import { readBack } from './read-back';
import type { ScalingPoint } from './results';
import { COUNT, count, resetScalingTables } from './scaling-tables';

export async function relayRounds(args: {
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
    const { targets } = brokerTargets(`${args.runId}-relay-${broker}-${n}`, {
      ...process.env,
      SAGE_BENCH_BROKERS: broker,
    });
    const target = targets[0];
    if (!target) throw new Error(`${broker} is not configured (see scripts/services.sh env)`);
    await target.setup();
    try {
      await resetScalingTables(admin);
      // One transaction, so every row becomes visible at once.
      await admin.query('BEGIN');
      await preloadOutbox(admin, messages, 1000, target.destination);
      await admin.query('COMMIT');
      await admin.query(`VACUUM (ANALYZE) ${OUTBOX_TABLES.outboxMessage}`);
      await fleet.command(n, 'prepare', { brokerUrl: target.url });
      const point = await measureRound(fleet, monitor, {
        scenario: 'relay',
        broker,
        processes: n,
        items: messages,
        doneSql: COUNT.outboxSent,
        check: async (stopped) => {
          const reader = target.sage();
          try {
            const order = checkPerKeyOrder(
              await readBack(reader, target.destination, messages, roundTimeoutMs(messages)),
            );
            const sentByRelays = stopped.reduce((a, s) => a + Number(s.sent ?? 0), 0);
            const staleMarks = stopped.reduce((a, s) => a + Number(s.staleMarks ?? 0), 0);
            const busyRelays = stopped.filter((s) => Number(s.sent ?? 0) > 0).length;
            return expectCounts(
              { ...order, sentByRelays, staleMarks, busyRelays, keysInBacklog: BENCH_KEYS },
              [
                ['rows not sent', await count(monitor, COUNT.outboxNotSent), 0],
                ['distinct messages on the broker', order.distinct, messages],
                ['per-key order violations', order.orderViolations, 0],
                ['stale marks', staleMarks, 0],
              ],
            );
          } finally {
            await reader.close();
          }
        },
      });
      log(
        `  relay ${broker} ×${n}: ${point.perSec}/s in ${point.elapsedMs} ms` +
          `${point.error ? ` FAILED ${point.error}` : ''}${point.checks.ok ? '' : ` checks: ${point.checks.problems.join('; ')}`}`,
      );
      points.push(point);
    } finally {
      await target.teardown().catch((error: unknown) => log(`  teardown: ${String(error)}`));
    }
  }
  return points;
}
