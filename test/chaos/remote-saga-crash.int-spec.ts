/**
 * Chaos for remote (command/reply) steps over a real broker (RabbitMQ): an orchestrator process
 * running 150 sagas (local → remote → local) is killed with SIGKILL mid-run, and so is the
 * participant; new processes take over. Guarantees under test (DESIGN.md §1): every saga completes
 * across crashes; local steps are exactly-once; the participant handles each command message at
 * most once (inbox) and its effect happens once per step idempotency key, however often the command
 * is resent or redelivered.
 */
import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { createSagaDataSource } from '../../libs/saga-outbox/src/persistence/postgres/data-source';
import { createTestDatabase, dataSourceOptions, type TestDatabase } from '../support/pg';
import { pollUntil, spawnWorkerScript, type WorkerHandle } from './workers/saga-worker';
import { REMOTE_CHAOS_DDL, type RemoteWorkerConfig } from './workers/remote-saga-worker';

const SAGAS = 150;
const TEST_TIMEOUT_MS = 120_000;

describe('remote saga steps across kill -9 of the orchestrator and the participant (RabbitMQ)', () => {
  let db: TestDatabase | undefined;
  let dataSource: DataSource | undefined;
  const workers: WorkerHandle[] = [];

  beforeEach(async () => {
    db = await createTestDatabase();
    dataSource = createSagaDataSource(
      dataSourceOptions(db.name, { poolSize: 2, applicationName: 'remote-chaos-test' }),
    );
    await dataSource.initialize();
    await dataSource.query(REMOTE_CHAOS_DDL);
  }, 30_000);

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.kill('SIGKILL')));
    await dataSource?.destroy();
    await db?.drop();
  }, 30_000);

  const query = async <T>(sql: string): Promise<T[]> => dataSource!.query<T[]>(sql);

  async function state(): Promise<{ terminal: number; waiting: number; charged: number }> {
    const [row] = await query<{ terminal: number; waiting: number; charged: number }>(`
      SELECT (SELECT count(*) FROM orders_sage.saga_instance WHERE status = 'completed')::int AS terminal,
             (SELECT count(*) FROM orders_sage.saga_step WHERE status = 'waiting')::int AS waiting,
             (SELECT count(*) FROM public.charges)::int AS charged`);
    return row!;
  }

  it(
    'finishes every saga with local effects exactly once and one charge per step key',
    async () => {
      const id = randomUUID().slice(0, 8);
      const rabbit = process.env.SAGE_RABBITMQ_URL ?? 'amqp://sage:sage@127.0.0.1:56729';
      const base: Omit<RemoteWorkerConfig, 'role' | 'ownerId'> = {
        database: db!.name,
        brokerUrl: `${rabbit}?exchange=chaos-${id}&queueType=classic`,
        commands: `chaos.cards.${id}`,
        replies: `chaos.replies.${id}`,
      };
      const spawn = (config: RemoteWorkerConfig): WorkerHandle => {
        const w = spawnWorkerScript('remote-saga-worker.ts', config);
        workers.push(w);
        return w;
      };
      const ready = (w: WorkerHandle) => w.waitForMessage((m) => 'ready' in m, 30_000);

      const p1 = spawn({ ...base, role: 'participant', ownerId: 'participant-1' });
      await ready(p1);
      const a = spawn({ ...base, role: 'orchestrator', ownerId: 'orchestrator-A', count: SAGAS });
      await a.waitForMessage((m) => 'allStarted' in m, 45_000);

      // Kill the participant once it has charged some, while commands are still flowing.
      await pollUntil('some charges', state, (s) => s.charged >= SAGAS / 5, 45_000, 5);
      await p1.kill('SIGKILL');
      const p2 = spawn({ ...base, role: 'participant', ownerId: 'participant-2' });
      // Kill the orchestrator mid-run too: some sagas done, others waiting on replies.
      const atKill = await pollUntil(
        'sagas mid-run',
        state,
        (s) => s.terminal >= SAGAS / 4,
        45_000,
        5,
      );
      await a.kill('SIGKILL');
      expect(atKill.terminal).toBeLessThan(SAGAS);
      await ready(p2);
      const b = spawn({ ...base, role: 'orchestrator', ownerId: 'orchestrator-B' });
      await ready(b);
      await pollUntil(
        `all ${SAGAS} sagas completed`,
        state,
        (s) => s.terminal === SAGAS,
        60_000,
        50,
      );

      const statuses = await query<{ status: string; n: number }>(
        'SELECT status, count(*)::int AS n FROM orders_sage.saga_instance GROUP BY status',
      );
      expect(statuses).toEqual([{ status: 'completed', n: SAGAS }]);
      // Local steps: exactly once each, whoever ran them.
      const local = await query<{ steps: number; duplicated: number; byB: number }>(`
        SELECT count(*)::int AS steps,
               count(*) FILTER (WHERE n > 1)::int AS duplicated,
               count(*) FILTER (WHERE owners @> ARRAY['orchestrator-B'])::int AS "byB"
        FROM (SELECT saga_id, step, count(*) AS n, array_agg(owner) AS owners
              FROM public.local_effects GROUP BY saga_id, step) s`);
      expect(local[0]).toMatchObject({ steps: SAGAS * 2, duplicated: 0 });
      expect(local[0]!.byB).toBeGreaterThan(0);
      // The participant: each command message handled at most once (the inbox), one charge per key.
      const handled = await query<{ messages: number; twice: number; keys: number }>(`
        SELECT count(*)::int AS messages,
               count(*) FILTER (WHERE n > 1)::int AS twice,
               count(DISTINCT idempotency_key)::int AS keys
        FROM (SELECT message_id, min(idempotency_key) AS idempotency_key, count(*) AS n
              FROM public.command_log GROUP BY message_id) m`);
      expect(handled[0]).toMatchObject({ twice: 0, keys: SAGAS });
      const [charges] = await query<{ n: number }>('SELECT count(*)::int AS n FROM public.charges');
      expect(charges!.n).toBe(SAGAS);
      // Every completed remote step holds the participant's answer.
      const [answers] = await query<{ n: number }>(`
        SELECT count(*)::int AS n FROM orders_sage.saga_step
        WHERE name = 'charge' AND status = 'completed'
          AND result->>'charged' = saga_id::text || ':charge'`);
      expect(answers!.n).toBe(SAGAS);
      console.log(
        `remote chaos: at the orchestrator kill ${JSON.stringify(atKill)}; command messages handled ` +
          `${handled[0]!.messages} for ${SAGAS} keys (resends/redeliveries), local steps resumed by B ${local[0]!.byB}`,
      );
    },
    TEST_TIMEOUT_MS,
  );
});
