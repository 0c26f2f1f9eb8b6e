import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import type { DataSource } from 'typeorm';
import { sagaOutboxMigrations } from '../../migrations';
import { LeaseLostError } from '../../core/errors';
import type { NewSaga } from '../../core/ports/saga-store';
import { describeSagaStoreConformance } from '../../testing/saga-store-conformance';
import {
  spawnEmbeddedPostgres as startEmbeddedPostgres,
  type EmbeddedPostgresProcess as EmbeddedPostgres,
} from '@test/support/embedded-postgres-process';
import { createSagaDataSource, runMigrationsLocked } from './data-source';
import { PostgresSagaStore } from './postgres-saga-store';

// The int project's testTimeout is not applied per project by jest; these tests start servers.
jest.setTimeout(120_000);

// startEmbeddedPostgres runs in a child node process (see test/support/embedded-postgres-process.ts
// for why); everything else — TypeORM, migrations, the store — runs here, over the socket.

function newSaga(overrides: Partial<NewSaga> = {}): NewSaga {
  return {
    id: randomUUID(),
    name: 'embedded-demo',
    version: 'v1',
    input: { demo: true },
    idempotencyKey: null,
    stepNames: ['a', 'b'],
    owner: null,
    leaseMs: 60_000,
    timeoutMs: null,
    ...overrides,
  };
}

async function connect(pg: EmbeddedPostgres, poolSize = 4): Promise<DataSource> {
  return createSagaDataSource({
    host: pg.host,
    port: pg.port,
    username: pg.username,
    password: pg.password,
    database: pg.database,
    poolSize,
  }).initialize();
}

// The same store contract on PGlite, where transactions of different connections are serialised.
describeSagaStoreConformance('PGlite (embedded)', async () => {
  const pg = await startEmbeddedPostgres({ maxConnections: 12 });
  const dataSource = await connect(pg, 10);
  await runMigrationsLocked(dataSource);
  return {
    store: new PostgresSagaStore(dataSource),
    newTx: (fn) => dataSource.transaction(fn),
    async cleanup() {
      await dataSource.destroy();
      await pg.stop();
    },
  };
});

describe('embedded PostgreSQL (PGlite over a socket)', () => {
  it('runs the migrations and the saga store through TypeORM, SKIP LOCKED claims included', async () => {
    const pg = await startEmbeddedPostgres({ maxConnections: 8 });
    let dataSource: DataSource | undefined;
    try {
      expect(pg.port).toBeGreaterThan(0);
      dataSource = await connect(pg, 6);
      await expect(runMigrationsLocked(dataSource)).resolves.toHaveLength(
        sagaOutboxMigrations().length,
      );
      await expect(runMigrationsLocked(dataSource)).resolves.toHaveLength(0);
      const store = new PostgresSagaStore(dataSource);

      const ids: string[] = [];
      for (let i = 0; i < 12; i++) {
        const saga = newSaga({ idempotencyKey: `k-${i}` });
        await expect(store.create(saga)).resolves.toEqual({ id: saga.id, created: true });
        ids.push(saga.id);
      }
      await expect(store.create(newSaga({ idempotencyKey: 'k-0' }))).resolves.toEqual({
        id: ids[0],
        created: false,
        inputFingerprint: null,
      });

      // Concurrent claimers over several pooled connections: disjoint sets, all claimed.
      const versions = [{ name: 'embedded-demo', version: 'v1' }];
      const claims = await Promise.all(
        ['w1', 'w2', 'w3'].map((w) => store.claimOrphans(w, versions, 5, 60_000)),
      );
      const claimed = claims.flat();
      expect(new Set(claimed).size).toBe(claimed.length);
      expect(claimed.length).toBe(12);
      const owner = claims.findIndex((c) => c.includes(ids[0]!));
      const fence = { sagaId: ids[0]!, owner: `w${owner + 1}` };

      // A step transaction with a business write, and the fence.
      await dataSource.query('CREATE TABLE IF NOT EXISTS demo_ledger (saga_id uuid, note text)');
      await expect(
        store.runStepTransaction(fence, 'a', 'forward', 1, async (tx) => {
          await tx.query('INSERT INTO demo_ledger VALUES ($1, $2)', [fence.sagaId, 'a']);
          return { result: { ok: true }, value: 'a' };
        }),
      ).resolves.toEqual({ kind: 'done', value: 'a' });
      await expect(
        store.runStepTransaction({ ...fence, owner: 'intruder' }, 'b', 'forward', 1, async (tx) => {
          await tx.query('INSERT INTO demo_ledger VALUES ($1, $2)', [fence.sagaId, 'b']);
          return { result: null, value: 'b' };
        }),
      ).rejects.toBeInstanceOf(LeaseLostError);
      await expect(dataSource.query('SELECT note FROM demo_ledger')).resolves.toEqual([
        { note: 'a' },
      ]);

      await expect(store.transition(fence, ['running'], 'completed')).resolves.toBe(true);
      const record = await store.load(fence.sagaId);
      expect(record).toMatchObject({ status: 'completed', owner: null, input: { demo: true } });
      expect(record?.steps.map((s) => s.status)).toEqual(['completed', 'pending']);
      await expect(store.activeVersions()).resolves.toEqual([
        { name: 'embedded-demo', version: 'v1', count: 11 },
      ]);
    } finally {
      await dataSource?.destroy();
      await pg.stop();
    }
  });

  it("keeps concurrent clients' parameterised queries apart outside transactions (each gets its own answer)", async () => {
    // pglite-socket multiplexes every client onto one session; without keeping each client's
    // Parse/Bind/Execute/Sync batch together, two clients' batches interleave ("bind message
    // supplies 2 parameters, but prepared statement requires 1") or answer each other's queries.
    const pg = await startEmbeddedPostgres({ maxConnections: 8 });
    const clients = Array.from({ length: 6 }, () => new Client({ connectionString: pg.url }));
    try {
      await Promise.all(clients.map((c) => c.connect()));
      const wrong: string[] = [];
      await Promise.all(
        clients.map(async (client, c) => {
          for (let i = 0; i < 30; i++) {
            // Alternate statement shapes (1 and 2 parameters) so an interleaving cannot go unseen.
            if ((i + c) % 2 === 0) {
              const { rows } = await client.query<{ n: number }>('SELECT $1::int AS n', [
                c * 1000 + i,
              ]);
              if (rows[0]?.n !== c * 1000 + i)
                wrong.push(`client ${c} query ${i}: ${JSON.stringify(rows)}`);
            } else {
              // A large parameter spans several TCP chunks: other clients' messages arrive between.
              const big = `c${c}`.padEnd(200_000, '.');
              const { rows } = await client.query<{ n: number; s: string }>(
                'SELECT $1::int AS n, left($2::text, 8) AS s',
                [c * 1000 + i, big],
              );
              if (rows[0]?.n !== c * 1000 + i || rows[0]?.s !== big.slice(0, 8))
                wrong.push(`client ${c} query ${i}: ${JSON.stringify(rows)}`);
            }
          }
        }),
      );
      expect(wrong).toEqual([]);
    } finally {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      await pg.stop();
    }
  });

  it('keeps its data in dataDir across a stop and a start', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'sage-pglite-'));
    try {
      const saga = newSaga({ owner: 'w1' });
      const first = await startEmbeddedPostgres({ dataDir });
      try {
        const dataSource = await connect(first);
        try {
          await runMigrationsLocked(dataSource);
          await new PostgresSagaStore(dataSource).create(saga);
        } finally {
          await dataSource.destroy();
        }
      } finally {
        await first.stop();
      }
      await first.stop(); // idempotent

      const second = await startEmbeddedPostgres({ dataDir });
      try {
        const dataSource = await connect(second);
        try {
          await expect(runMigrationsLocked(dataSource)).resolves.toHaveLength(0);
          const record = await new PostgresSagaStore(dataSource).load(saga.id);
          expect(record).toMatchObject({
            id: saga.id,
            status: 'running',
            owner: 'w1',
            input: { demo: true },
          });
        } finally {
          await dataSource.destroy();
        }
      } finally {
        await second.stop();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('accepts plain pg clients up to maxConnections and turns away the next one', async () => {
    const pg = await startEmbeddedPostgres({ maxConnections: 2 });
    const client = () =>
      new Client({ host: pg.host, port: pg.port, user: pg.username, database: pg.database });
    const clients = [client(), client()];
    try {
      await Promise.all(clients.map((c) => c.connect()));
      const results = await Promise.all(
        clients.map((c) => c.query<{ one: number }>('SELECT 1 AS one')),
      );
      expect(results.map((r) => r.rows[0]?.one)).toEqual([1, 1]);
      const extra = client();
      extra.on('error', () => undefined); // the refusal may also surface as an 'error' event
      await expect(extra.connect()).rejects.toThrow();
    } finally {
      await Promise.all(clients.map((c) => c.end()));
      await pg.stop();
    }
  });
});
