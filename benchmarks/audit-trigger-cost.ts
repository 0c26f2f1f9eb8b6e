/**
 * What the audit log's recording triggers cost the saga engine (docs/audit-log.md): the same
 * 3-step local saga run through SagaEngine + PostgresSagaStore on two scratch databases cloned from
 * the migrated template, one as migrated (triggers recording every saga and step transition into
 * audit_pending) and one with the recording triggers dropped, in alternating rounds of one run.
 * No sealer runs (it is the same cost either way, off the sagas' path).
 *
 *   eval "$(bash scripts/services.sh env postgres)"
 *   node -r ts-node/register/transpile-only -r tsconfig-paths/register benchmarks/audit-trigger-cost.ts [sagasPerRound] [rounds]
 */
import 'reflect-metadata';
import type { DataSource, EntityManager } from 'typeorm';
import { createTestDatabase, dataSourceOptions, type TestDatabase } from '../test/support/pg';
import { createSagaDataSource } from '../libs/saga-outbox/src/persistence/postgres/data-source';
import { PostgresSagaStore } from '../libs/saga-outbox/src/persistence/postgres/postgres-saga-store';
import { SagaEngine } from '../libs/saga-outbox/src/core/saga/saga-engine';
import { defineSaga } from '../libs/saga-outbox/src/core/saga/saga-builder';

const RECORDING_TRIGGERS = [
  ['saga_instance', 'saga_instance_audit_insert'],
  ['saga_instance', 'saga_instance_audit_status'],
  ['saga_step', 'saga_step_audit_status'],
] as const;

const saga = defineSaga<{ n: number }, EntityManager>('audit-cost')
  .step('a', { run: () => ({ a: 1 }), compensate: () => undefined })
  .step('b', { run: () => ({ b: 1 }), compensate: () => undefined })
  .step('c', { run: () => ({ c: 1 }), compensatable: false })
  .build();

interface Target {
  label: string;
  db: TestDatabase;
  ds: DataSource;
  engine: SagaEngine<EntityManager>;
  ms: number;
  sagas: number;
}

async function target(label: string, dropTriggers: boolean): Promise<Target> {
  const db = await createTestDatabase();
  const ds = await createSagaDataSource(dataSourceOptions(db.name, { poolSize: 8 })).initialize();
  if (dropTriggers)
    for (const [table, trigger] of RECORDING_TRIGGERS)
      await ds.query(`DROP TRIGGER ${trigger} ON sage.${table}`);
  const engine = new SagaEngine<EntityManager>({
    store: new PostgresSagaStore(ds),
    ownerId: `audit-cost-${label}`,
    maxConcurrentSagas: 64,
  });
  engine.register(saga);
  return { label, db, ds, engine, ms: 0, sagas: 0 };
}

async function round(t: Target, sagas: number, concurrency: number): Promise<void> {
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < sagas) {
        next++;
        const { sagaId } = await t.engine.start('audit-cost', { n: next });
        const record = await t.engine.waitFor(sagaId, { timeoutMs: 30_000 });
        if (record.status !== 'completed') throw new Error(`saga ${sagaId} ended ${record.status}`);
      }
    }),
  );
  t.ms += performance.now() - started;
  t.sagas += sagas;
}

async function main(): Promise<void> {
  const perRound = Number(process.argv[2] ?? 100);
  const rounds = Number(process.argv[3] ?? 8);
  const concurrency = 8;
  const on = await target('triggers', false);
  const off = await target('no-triggers', true);
  try {
    await round(on, 20, concurrency); // warm-up, not counted
    await round(off, 20, concurrency);
    on.ms = off.ms = on.sagas = off.sagas = 0;
    for (let i = 0; i < rounds; i++)
      for (const t of i % 2 ? [off, on] : [on, off]) await round(t, perRound, concurrency);
    const [steps] = (await on.ds.query(
      `SELECT count(*)::int AS n FROM sage.audit_pending WHERE action LIKE 'step.%'`,
    )) as { n: number }[];
    const [offSteps] = (await off.ds.query(
      `SELECT count(*)::int AS n FROM sage.audit_pending`,
    )) as { n: number }[];
    const perSaga = (t: Target) => t.ms / t.sagas;
    console.log(
      JSON.stringify(
        {
          sagasPerTarget: on.sagas,
          concurrency,
          stepTransitionsRecorded: steps!.n,
          entriesWithTriggersDropped: offSteps!.n,
          msPerSagaWithTriggers: +perSaga(on).toFixed(3),
          msPerSagaWithout: +perSaga(off).toFixed(3),
          ratio: +(perSaga(on) / perSaga(off)).toFixed(3),
        },
        null,
        2,
      ),
    );
  } finally {
    for (const t of [on, off]) {
      await t.engine.shutdown();
      await t.ds.destroy();
      await t.db.drop();
    }
  }
}

void main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
