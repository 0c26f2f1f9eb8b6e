/**
 * The last step's transaction also completes the saga (issue 17): a worker killed just before
 * that COMMIT leaves the step and the saga's end rolled back together (a second worker recovers
 * the saga, runs the step once and completes it); killed just after it, the saga is completed
 * already and nothing runs again. On real PostgreSQL, each step's effect counted exactly once.
 */
import type { DataSource, EntityManager } from 'typeorm';
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import { defineSaga } from '../../core/saga/saga-builder';
import { sagaCrashHarness } from './saga-crash-harness';

interface Input {
  order: string;
}

const effect = async (ctx: { stepName: string; input: Input; manager: EntityManager }) => {
  await ctx.manager.query('INSERT INTO shop.effect (order_id, step) VALUES ($1, $2)', [
    ctx.input.order,
    ctx.stepName,
  ]);
};
const undo = async (ctx: { stepName: string; input: Input; manager: EntityManager }) => {
  await ctx.manager.query('DELETE FROM shop.effect WHERE order_id = $1 AND step = $2', [
    ctx.input.order,
    ctx.stepName,
  ]);
};

const ThreeSteps = defineSaga<Input, EntityManager>('three-steps-completion-crash')
  .step('a', { run: effect, compensate: undo })
  .step('b', { dependsOn: ['a'], run: effect, compensate: undo })
  .step('c', { dependsOn: ['b'], run: effect, compensate: undo })
  .build();

const setup = async (ds: DataSource): Promise<void> => {
  await ds.query(`CREATE SCHEMA IF NOT EXISTS shop`);
  await ds.query(
    `CREATE TABLE IF NOT EXISTS shop.effect (order_id text NOT NULL, step text NOT NULL)`,
  );
};

describe('crash at the commit that completes a saga (PostgreSQL)', () => {
  let db: TestDatabase | undefined;

  beforeAll(async () => {
    db = await createTestDatabase({ migrated: false });
  }, 30_000);
  afterAll(() => db?.drop(), 30_000);

  it('killed before or after the last step committed with the completion: completed once, every effect once', async () => {
    const c = db!.connection;
    const harness = sagaCrashHarness<Input>({
      saga: ThreeSteps,
      database: { url: `postgres://${c.user}:${c.password}@${c.host}:${c.port}/${c.database}` },
      input: { order: 'order-1' },
      setup,
      tables: ['shop.effect'],
      invariants: async ({ manager, saga }) => {
        expect(saga.status).toBe('completed');
        const rows = await manager.query<{ step: string }[]>(
          'SELECT step FROM shop.effect ORDER BY step',
        );
        expect(rows.map((r) => r.step)).toEqual(['a', 'b', 'c']);
      },
    });
    try {
      // Before: the step and the completion rolled back together; worker 2 runs "c" and completes.
      const before = await harness.run('crash before "c" committed');
      expect(before.problems).toEqual([]);
      // After: the saga was completed by that COMMIT; worker 2 finds nothing left to do.
      const after = await harness.run('crash after "c" committed, before the saga completed');
      expect(after.problems).toEqual([]);
    } finally {
      await harness.close();
    }
  }, 60_000);
});
