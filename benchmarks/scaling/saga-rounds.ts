/**
 * Scenario (c): N saga-worker processes running a backlog of local 3-step sagas. The sagas are
 * started inside the controller's transactions (owner NULL: waiting for a worker, exactly as a
 * saga whose worker died waits once its lease expired), then the workers' recovery loops claim
 * them (SKIP LOCKED) and run them. Timed until every saga is `completed`; checked: each step's
 * business row written exactly once.
 */
import type pg from 'pg';
import { PostgresSagaStore, SagaEngine } from '@sage/saga-outbox';
import type { DataSource, EntityManager } from 'typeorm';
import type { Fleet } from './fleet';
import { expectCounts, measureRound } from './measure-round';
import type { ScalingPoint } from './results';
import { SCALING_SAGA, SCALING_SAGA_STEPS, scalingSaga } from './scaling-saga';
import { COUNT, count, resetScalingTables } from './scaling-tables';

const STARTS_PER_TX = 500;

/** `sagas` sagas waiting for a worker, started through the engine in the caller's transactions. */
async function startBacklog(ds: DataSource, sagas: number): Promise<void> {
  const engine = new SagaEngine<EntityManager>({ store: new PostgresSagaStore(ds) });
  engine.register(scalingSaga());
  for (let from = 0; from < sagas; from += STARTS_PER_TX)
    await ds.transaction(async (manager) => {
      for (let n = from; n < Math.min(sagas, from + STARTS_PER_TX); n++)
        await engine.start(SCALING_SAGA, { n }, { manager });
    });
  await engine.shutdown();
}

export async function sagaRounds(args: {
  fleet: Fleet;
  admin: pg.Client;
  monitor: pg.Client;
  controllerDs: DataSource;
  processCounts: number[];
  sagas: number;
  log: (line: string) => void;
}): Promise<ScalingPoint[]> {
  const { fleet, admin, monitor, sagas, log } = args;
  const points: ScalingPoint[] = [];
  for (const n of args.processCounts) {
    await resetScalingTables(admin);
    await startBacklog(args.controllerDs, sagas);
    await admin.query('VACUUM (ANALYZE) sage.saga_instance, sage.saga_step');
    await fleet.command(n, 'prepare');
    const point = await measureRound(fleet, monitor, {
      scenario: 'saga',
      broker: null,
      processes: n,
      items: sagas,
      doneSql: COUNT.sagasCompleted,
      check: async (stopped) => {
        const completedByWorkers = stopped.reduce((a, s) => a + Number(s.completed ?? 0), 0);
        const busyWorkers = stopped.filter((s) => Number(s.completed ?? 0) > 0).length;
        const businessRows = await count(monitor, COUNT.businessRows);
        const distinct = await count(monitor, COUNT.distinctBusinessRows);
        return expectCounts(
          {
            completedByWorkers,
            busyWorkers,
            businessRows,
            otherEnds: stopped.reduce((a, s) => a + Number(s.otherEnds ?? 0), 0),
          },
          [
            ['sagas not completed', await count(monitor, COUNT.sagasNotCompleted), 0],
            ['business rows', businessRows, sagas * SCALING_SAGA_STEPS],
            ['distinct (saga, step) rows', distinct, sagas * SCALING_SAGA_STEPS],
            ['sagas completed by the workers', completedByWorkers, sagas],
          ],
        );
      },
    });
    log(
      `  saga ×${n}: ${point.perSec}/s in ${point.elapsedMs} ms` +
        `${point.error ? ` FAILED ${point.error}` : ''}${point.checks.ok ? '' : ` checks: ${point.checks.problems.join('; ')}`}`,
    );
    points.push(point);
  }
  return points;
}
