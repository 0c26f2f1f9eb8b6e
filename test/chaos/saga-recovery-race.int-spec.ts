/**
 * Chaos: three worker processes (each its own engine, owner id and connection pool) race their
 * recovery loops over 100 orphaned sagas. The claim (`FOR UPDATE SKIP LOCKED` + lease) must hand
 * every saga to exactly one of them: every step effect lands once, and all the effects of a saga
 * were written by a single owner.
 */
import { randomUUID } from 'node:crypto';
import { PostgresSagaStore, SagaEngine } from '@sage/saga-outbox';
import type { DataSource, EntityManager } from 'typeorm';
import { createSagaDataSource } from '../../libs/saga-outbox/src/persistence/postgres/data-source';
import { createTestDatabase, dataSourceOptions, type TestDatabase } from '../support/pg';
import {
  CHAOS_SAGA,
  CHAOS_STEPS,
  EFFECTS_DDL,
  auditSteps,
  chaosSaga,
  exactlyOnceViolations,
  pollUntil,
  spawnSagaWorker,
  type ChaosInput,
  type WorkerHandle,
} from './workers/saga-worker';

const SAGAS = 100;
/** Of which this many were left behind by a dead owner (expired lease); the rest never had one. */
const ABANDONED = 30;
const FAIL_EVERY = 5;
const WORKERS = 3;
/**
 * Long enough that no lease runs out during the test: a saga changing hands because its owner was
 * merely slow is legal, but it is not the race under test, and would make "one owner" ambiguous.
 */
const LEASE_MS = 20_000;

describe('saga recovery race: three processes claim 100 orphans (PostgreSQL)', () => {
  let db: TestDatabase | undefined;
  let dataSource: DataSource | undefined;
  const workers: WorkerHandle[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    dataSource = createSagaDataSource(
      dataSourceOptions(db.name, { poolSize: 2, applicationName: 'race-test' }),
    );
    await dataSource.initialize();
    await dataSource.query(EFFECTS_DDL);
  }, 30_000);

  afterAll(async () => {
    await Promise.all(workers.splice(0).map((w) => w.kill('SIGKILL')));
    await dataSource?.destroy();
    await db?.drop();
  }, 30_000);

  it('runs every saga once: each effect exactly once, each saga by exactly one owner', async () => {
    const ds = dataSource!;
    const store = new PostgresSagaStore(ds);
    // Only creates sagas; never runs one (no background loops, every start inside a transaction).
    const creator = new SagaEngine<EntityManager>({ store, ownerId: 'creator' });
    const definition = chaosSaga('creator');
    creator.register(definition);
    const input = (i: number): ChaosInput => ({ i, failAt: i % FAIL_EVERY === 0 ? 'c' : null });

    // Orphans of the first kind: started inside a business transaction that committed; nobody
    // ever owned them.
    await ds.transaction(async (manager) => {
      for (let i = ABANDONED; i < SAGAS; i++) {
        await creator.start(CHAOS_SAGA, input(i), { manager, idempotencyKey: `race-${i}` });
      }
    });
    // Second kind: owned by a worker that died; its lease ran out.
    for (let i = 0; i < ABANDONED; i++) {
      await store.create({
        id: randomUUID(),
        name: CHAOS_SAGA,
        version: definition.version,
        input: { ...input(i) },
        idempotencyKey: `race-${i}`,
        stepNames: definition.order,
        owner: 'dead-worker',
        leaseMs: 1,
        timeoutMs: null,
      });
    }
    const [orphans] = await ds.query<{ n: number; unowned: number }[]>(`
      SELECT count(*)::int AS n, count(*) FILTER (WHERE owner IS NULL)::int AS unowned
      FROM sage.saga_instance WHERE status = 'running'`);
    expect(orphans).toEqual({ n: SAGAS, unowned: SAGAS - ABANDONED });
    await pollUntil(
      'the dead worker lease to run out',
      () =>
        ds.query<{ n: number }[]>(
          `SELECT count(*)::int AS n FROM sage.saga_instance WHERE lease_until > clock_timestamp()`,
        ),
      ([row]) => row?.n === 0,
      5_000,
    );

    // Small batches (capacity 8 each) so the workers claim many times over, against each other.
    for (let w = 0; w < WORKERS; w++) {
      workers.push(
        spawnSagaWorker({
          database: db!.name,
          mode: 'recover',
          ownerId: `racer-${w}`,
          leaseMs: LEASE_MS,
          recoveryIntervalMs: 20,
          maxConcurrentSagas: 8,
          waitForGo: true,
        }),
      );
    }
    // Release them together once all are connected, so their first claims collide.
    await Promise.all(workers.map((w) => w.waitForMessage((m) => 'ready' in m, 30_000)));
    for (const w of workers) w.send('go');

    await pollUntil(
      `all ${SAGAS} sagas terminal`,
      async () => {
        const dead = workers.find((w) => w.hasExited);
        if (dead) throw new Error(`worker ${dead.ownerId} exited; stderr:\n${dead.stderr()}`);
        const [row] = await ds.query<{ terminal: number }[]>(
          `SELECT count(*)::int AS terminal FROM sage.saga_instance WHERE status IN ('completed', 'compensated', 'failed')`,
        );
        return row!;
      },
      (row) => row.terminal === SAGAS,
      60_000,
      50,
    );

    const audit = await auditSteps(ds);
    const bySaga = new Map(audit.map((r) => [r.sagaId, r]));
    const wrongStatus = [...bySaga.values()]
      .filter((r) => r.sagaStatus !== (r.i % FAIL_EVERY === 0 ? 'compensated' : 'completed'))
      .map((r) => `saga #${r.i}: ${r.sagaStatus}`);
    expect(wrongStatus).toEqual([]);
    expect(await exactlyOnceViolations(ds)).toEqual([]);
    expect(audit.filter((r) => r.sagaStatus === 'completed' && r.stepStatus === 'pending')).toEqual(
      [],
    );

    // One owner per saga, over forward steps and compensations alike.
    const owners = await ds.query<{ saga_id: string; owners: string[] }[]>(
      `SELECT saga_id, array_agg(DISTINCT owner ORDER BY owner) AS owners FROM public.effects GROUP BY saga_id`,
    );
    expect(owners).toHaveLength(SAGAS);
    expect(owners.filter((o) => o.owners.length !== 1)).toEqual([]);
    const perOwner = new Map<string, number>();
    for (const o of owners) perOwner.set(o.owners[0]!, (perOwner.get(o.owners[0]!) ?? 0) + 1);
    console.log(`sagas per owner: ${JSON.stringify(Object.fromEntries(perOwner))}`);
    expect([...perOwner.keys()].every((k) => k.startsWith('racer-'))).toBe(true);
    // A race needs racers: the claims really were contended by more than one process.
    expect(perOwner.size).toBeGreaterThanOrEqual(2);

    const [{ effects }] = await ds.query<[{ effects: number }]>(
      'SELECT count(*)::int AS effects FROM public.effects',
    );
    // Completed sagas: 4 effects each; compensated ones: a, a-undo, maybe b and b-undo.
    const compensated = SAGAS / FAIL_EVERY;
    expect(effects).toBeGreaterThanOrEqual(
      (SAGAS - compensated) * CHAOS_STEPS.length + 2 * compensated,
    );
    expect(effects).toBeLessThanOrEqual(
      (SAGAS - compensated) * CHAOS_STEPS.length + 4 * compensated,
    );
  }, 90_000);
});
