/**
 * Least privilege (issue 13): ops/postgres/sage-roles.sql makes a migrator that owns Sage's schema
 * and a runtime role with DML only; the whole flow then runs as the runtime role, on real
 * PostgreSQL: `sage migrate` as the migrator (after the script: the runtime's rights on the new
 * tables come from the default privileges), SagaOutboxModule with `runMigrations: false` as the
 * runtime role — a saga compensated, messages published through the outbox by the relay to a
 * broker, consumed through the inbox, retention deleting both — `sage status` and dead-letter
 * commands as the runtime role; and every DDL attempt as the runtime role refused (it owns nothing).
 *
 * Roles are cluster-wide: unique names per run, dropped in afterAll with the database.
 */
import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Injectable, Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { EntityManager } from 'typeorm';
import { Client } from 'pg';
import {
  defineSaga,
  IdempotentHandler,
  InMemoryBroker,
  OutboxRelayService,
  OutboxRepository,
  SagaOutboxModule,
  SagaService,
  SageDatabase,
  type DeliveredMessage,
} from '@sage/saga-outbox';
import { createTestDatabase, withClient, type TestDatabase } from '@test/support/pg';
import { runCli } from '../../libs/saga-outbox/src/cli/cli';
import { sagaOutboxMigrations } from '../../libs/saga-outbox/src/migrations';
import { waitUntil } from '../../libs/saga-outbox/src/testing/async';

jest.setTimeout(90_000);

const ROOT = join(__dirname, '..', '..');
const SCRIPT = join(ROOT, 'ops', 'postgres', 'sage-roles.sql');
const DESTINATION = 'least-privilege.orders';
const CONSUMER = 'least-privilege.orders-consumer';

/** psql: SAGE_PG_BIN (as scripts/services.sh), else the newest /usr/lib/postgresql, else PATH. */
function psqlPath(): string {
  if (process.env.SAGE_PG_BIN) return join(process.env.SAGE_PG_BIN, 'psql');
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base)
    ? readdirSync(base)
        .filter((v) => existsSync(join(base, v, 'bin', 'psql')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  return versions[0] ? join(base, versions[0], 'bin', 'psql') : 'psql';
}

const suffix = randomBytes(4).toString('hex');
const roles = {
  migrator: { name: `sage_mig_${suffix}`, password: randomBytes(12).toString('hex') },
  runtime: { name: `sage_run_${suffix}`, password: randomBytes(12).toString('hex') },
};

@Injectable()
class OrdersConsumer {
  readonly seen: string[] = [];

  @IdempotentHandler(DESTINATION, { consumer: CONSUMER })
  onOrder(message: DeliveredMessage): Promise<void> {
    this.seen.push(message.id);
    return Promise.resolve();
  }
}

const compensated = defineSaga<{ n: number }, EntityManager>('least-privilege-order')
  .step('reserve', { run: () => ({ reserved: true }), compensate: () => undefined })
  .step('charge', {
    dependsOn: ['reserve'],
    retry: { maxAttempts: 1 },
    run: () => {
      throw new Error('card declined');
    },
    compensate: () => undefined,
  })
  .build();

let db: TestDatabase;
let app: INestApplicationContext | undefined;
const broker = new InMemoryBroker();

function url(role: { name: string; password: string }): string {
  const c = db.connection;
  return `postgres://${role.name}:${role.password}@${c.host}:${c.port}/${c.database}`;
}

async function sage(argv: string[], role: { name: string; password: string }) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, {
    env: { DATABASE_URL: url(role) },
    out: (t) => void (stdout += t),
    err: (t) => void (stderr += t),
  });
  return { code, stdout, stderr };
}

async function asRole<T>(
  role: { name: string; password: string },
  fn: (client: Client) => Promise<T>,
): Promise<T> {
  const client = new Client({ connectionString: url(role) });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  db = await createTestDatabase({ migrated: false });
  const c = db.connection;
  const psql = spawnSync(
    psqlPath(),
    [
      '-X',
      '-q',
      '-v',
      'ON_ERROR_STOP=1',
      '-h',
      c.host,
      '-p',
      String(c.port),
      '-U',
      c.user,
      '-d',
      c.database,
      '-v',
      'schema=sage',
      '-v',
      `migrator=${roles.migrator.name}`,
      '-v',
      `runtime=${roles.runtime.name}`,
      '-f',
      SCRIPT,
    ],
    { env: { ...process.env, PGPASSWORD: c.password }, encoding: 'utf8' },
  );
  if (psql.status !== 0) throw new Error(`sage-roles.sql failed: ${psql.stderr}`);
  await withClient(db.name, async (admin) => {
    for (const r of Object.values(roles))
      await admin.query(`ALTER ROLE ${r.name} PASSWORD '${r.password}'`);
  });
});

afterAll(async () => {
  await app?.close();
  await db?.drop();
  await withClient(undefined, async (admin) => {
    for (const r of Object.values(roles)) await admin.query(`DROP ROLE IF EXISTS ${r.name}`);
  });
});

it('the runtime role cannot migrate; the migrator can (sage migrate)', async () => {
  const denied = await sage(['migrate'], roles.runtime);
  expect(denied.code).toBe(1);
  expect(denied.stderr).toMatch(/permission denied/);
  expect(denied.stderr).not.toContain(roles.runtime.password);
  const migrated = await sage(['migrate', '--json'], roles.migrator);
  expect(migrated.stderr).toBe('');
  expect(migrated.code).toBe(0);
  expect((JSON.parse(migrated.stdout) as { ran: string[] }).ran).toHaveLength(
    sagaOutboxMigrations().length,
  );
  // The migrator owns every table; the runtime role owns nothing.
  const owners = await withClient(db.name, async (admin) =>
    (
      await admin.query<{ owner: string }>(
        `SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class
          WHERE relnamespace = 'sage'::regnamespace AND relkind = 'r'`,
      )
    ).rows.map((r) => r.owner),
  );
  expect(owners).toEqual([roles.migrator.name]);
});

it('runs the whole flow as the runtime role with migrations off', async () => {
  const c = db.connection;
  @Module({
    imports: [
      SagaOutboxModule.forRoot({
        postgres: {
          host: c.host,
          port: c.port,
          database: c.database,
          user: roles.runtime.name,
          password: roles.runtime.password,
          poolSize: 4,
        },
        runMigrations: false,
        sagas: [compensated] as never[],
        broker,
        saga: { recoveryIntervalMs: 50 },
        outbox: {
          relay: { pollIntervalMs: 20 },
          // vacuumAfterRows 1: the runtime role's VACUUM (skipped before PostgreSQL 17, where
          // it does not own the table; MAINTAIN from 17) must not fail the retention loop.
          retention: { retentionMs: 0, intervalMs: 50, vacuumAfterRows: 1 },
        },
        inbox: { retention: { retentionMs: 0, intervalMs: 50, vacuumAfterRows: 1 } },
      }),
    ],
    providers: [OrdersConsumer],
  })
  class AppModule {}
  app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  await app.init();
  const ds = app.get(SageDatabase).dataSource;
  const [user] = (await ds.query('SELECT current_user AS name')) as { name: string }[];
  expect(user!.name).toBe(roles.runtime.name);

  // A saga that fails a step and compensates the one before.
  const sagas = app.get(SagaService);
  const { sagaId } = await sagas.start('least-privilege-order', { n: 1 });
  expect((await sagas.waitFor(sagaId)).status).toBe('compensated');

  // Published through the outbox, relayed to the broker, consumed through the inbox.
  const [id] = await ds.transaction((manager) =>
    app!
      .get(OutboxRepository)
      .publish(
        { destination: DESTINATION, type: 'order.placed', key: 'o-1', payload: {} },
        { manager },
      ),
  );
  await broker.waitFor((published) => published.some((m) => m.id === id), 10_000);
  const consumer = app.get(OrdersConsumer);
  await waitUntil(() => consumer.seen.includes(id!), 'the consumer handled the message');

  // Retention (outbox sent rows, inbox processed rows) deletes as the runtime role.
  const count = async (sql: string) =>
    Number(((await ds.query(sql, [id])) as { n: string }[])[0]!.n);
  await waitUntil(
    async () =>
      (await count(`SELECT count(*) AS n FROM sage.outbox_message WHERE id = $1`)) === 0 &&
      (await count(`SELECT count(*) AS n FROM sage.inbox_message WHERE message_id = $1`)) === 0,
    'retention deleted the sent outbox row and the processed inbox row',
    15_000,
  );

  const retention = app.get(OutboxRelayService).retention!;
  await waitUntil(() => retention.stats.loop.ticks > 2, 'a few more retention runs');
  expect(retention.stats.loop.errors).toBe(0);

  // The operator CLI as the runtime role: status, and a dead-letter command (nothing to change).
  const status = await sage(['status', '--json'], roles.runtime);
  expect(status.stderr).toBe('');
  expect(status.code).toBe(0);
  expect(JSON.parse(status.stdout)).toMatchObject({
    sagas: { byStatus: { compensated: 1 } },
  });
  const release = await sage(
    ['inbox', 'dead-letters', 'release', '--consumer', CONSUMER, 'nope', '--dry-run'],
    roles.runtime,
  );
  expect(release.code).toBe(1); // not a dead letter: read, nothing to change
  expect(release.stderr).toBe('');
});

it('keeps the audit log append-only for the runtime role (docs/audit-log.md)', async () => {
  await asRole(roles.runtime, async (client) => {
    // Entries are written (the flow above recorded its saga transitions) and sealed as this role.
    await client.query(
      `INSERT INTO sage.audit_log (seq, at, actor, action, target_type, target_id, detail, prev_hash, hash)
       VALUES (1, now(), 'runtime', 'saga.started', 'saga', 'x', '{}', 'x', 'x')`,
    );
    for (const sql of [
      `UPDATE sage.audit_log SET actor = 'someone else'`,
      'DELETE FROM sage.audit_log',
      'TRUNCATE sage.audit_log',
      `INSERT INTO sage.audit_checkpoint (seq, hash, pruned_until) VALUES (1, 'x', now())`,
      'DELETE FROM sage.audit_checkpoint',
    ])
      await expect(client.query(sql)).rejects.toMatchObject({ code: '42501' });
    await expect(client.query('SELECT count(*) FROM sage.audit_pending')).resolves.toBeDefined();
    // Retention goes through the SECURITY DEFINER function: checkpoint first, then the delete.
    const { rows } = await client.query<{ checkpoint: string | null }>(
      `SELECT sage.sage_audit_prune(now() + interval '1 minute') AS checkpoint`,
    );
    expect(rows[0]!.checkpoint).toBe('1');
    const left = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM sage.audit_log');
    expect(left.rows[0]!.n).toBe(0);
  });
});

it('refuses every DDL to the runtime role: it is not the owner', async () => {
  const attempts = [
    'CREATE TABLE sage.intruder (id int)',
    'ALTER TABLE sage.outbox_message ADD COLUMN intruder int',
    'DROP TABLE sage.saga_step',
    'TRUNCATE sage.outbox_message',
    'CREATE SCHEMA intruder',
    'CREATE TABLE public.intruder (id int)',
    'CREATE OR REPLACE FUNCTION sage.outbox_message_notify() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$',
  ];
  await asRole(roles.runtime, async (client) => {
    for (const sql of attempts)
      await expect(client.query(sql)).rejects.toMatchObject({ code: '42501' });
  });
  // ... while the migrator, the owner, may (in a transaction rolled back: the schema stays as is).
  await asRole(roles.migrator, async (client) => {
    await client.query('BEGIN');
    await client.query('ALTER TABLE sage.outbox_message ADD COLUMN allowed int');
    await client.query('ROLLBACK');
  });
});
