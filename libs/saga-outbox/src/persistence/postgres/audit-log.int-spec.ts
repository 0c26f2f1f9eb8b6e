/**
 * The tamper-evident audit log on real PostgreSQL (docs/audit-log.md): triggers record saga, step
 * and dead-letter changes in the changing transaction; the sealer chains them; verification names
 * the first entry edited, deleted, inserted or reordered; retention keeps the chain verifiable.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Client } from 'pg';
import type { DataSource } from 'typeorm';
import {
  createTestDatabase,
  dataSourceOptions,
  withClient,
  type TestDatabase,
} from '@test/support/pg';
import { runCli } from '../../cli/cli';
import { signingKeys } from '../../core/signing/signing-keys';
import { createSagaDataSource } from './data-source';
import { PostgresAuditLog, recordAudit } from './postgres-audit-log';

jest.setTimeout(60_000);

describe('audit log (PostgreSQL)', () => {
  let db: TestDatabase;
  let dataSource: DataSource;
  let audit: PostgresAuditLog;
  let admin: Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    dataSource = await createSagaDataSource(
      dataSourceOptions(db.name, { poolSize: 8 }),
    ).initialize();
    audit = new PostgresAuditLog(dataSource);
    admin = new Client(db.connection);
    await admin.connect();
  });

  afterAll(async () => {
    await admin?.end();
    if (dataSource?.isInitialized) await dataSource.destroy();
    await db?.drop();
  });

  const insertSaga = (client: Pick<Client, 'query'>, id = randomUUID()) =>
    client
      .query(
        `INSERT INTO sage.saga_instance (id, name, version, status, input)
         VALUES ($1, 'audited', 'v1', 'running', '{"card":"4111"}')`,
        [id],
      )
      .then(() => id);

  /** Changes made as the owner with the guard off (what only the table owner or a superuser can do). */
  const tamper = async (sql: string, values: unknown[] = []) => {
    await admin.query('BEGIN');
    await admin.query('ALTER TABLE sage.audit_log DISABLE TRIGGER audit_log_append_only');
    await admin.query(sql, values);
    await admin.query('ALTER TABLE sage.audit_log ENABLE TRIGGER audit_log_append_only');
    await admin.query('COMMIT');
  };

  it('records saga and step changes in the same transaction (a rollback leaves none), with the actor', async () => {
    const rolledBack = randomUUID();
    await admin.query('BEGIN');
    await insertSaga(admin, rolledBack);
    await admin.query('ROLLBACK');

    const id = randomUUID();
    await admin.query('BEGIN');
    await admin.query(`SELECT set_config('sage.actor', 'alice', true)`);
    await insertSaga(admin, id);
    await admin.query(
      `INSERT INTO sage.saga_step (saga_id, name, position) VALUES ($1, 'reserve', 0)`,
      [id],
    );
    await admin.query(
      `UPDATE sage.saga_step SET status = 'completed', attempts = 1 WHERE saga_id = $1`,
      [id],
    );
    await admin.query(`UPDATE sage.saga_instance SET status = 'completed' WHERE id = $1`, [id]);
    await admin.query('COMMIT');

    const { rows } = await admin.query<{ action: string; actor: string; detail: object }>(
      `SELECT action, actor, detail FROM sage.audit_pending
       WHERE target_id IN ($1, $2, $3) ORDER BY id`,
      [rolledBack, id, `${id}/reserve`],
    );
    expect(rows.map((r) => r.action)).toEqual(['saga.started', 'step.completed', 'saga.completed']);
    expect(rows.every((r) => r.actor === 'alice')).toBe(true);
    expect(rows[1]!.detail).toEqual(
      expect.objectContaining({ step: 'reserve', from: 'pending', to: 'completed', attempts: 1 }),
    );
    // No payload: the saga's input never reaches the audit log.
    expect(JSON.stringify(rows)).not.toContain('4111');

    // Without sage.actor, the database role is the actor.
    await insertSaga(admin);
    const { rows: last } = await admin.query<{ actor: string }>(
      'SELECT actor FROM sage.audit_pending ORDER BY id DESC LIMIT 1',
    );
    expect(last[0]!.actor).toBe(db.connection.user);
  });

  it('records outbox and inbox dead letters replayed, discarded and released', async () => {
    const [a, b] = [randomUUID(), randomUUID()];
    for (const id of [a, b])
      await admin.query(
        `INSERT INTO sage.outbox_message (id, destination, type, payload, status, attempts, last_error)
         VALUES ($1, 'orders', 'order.placed', '{"email":"x@example.com"}', 'dead_letter', 5, 'boom')`,
        [id],
      );
    await admin.query(
      `UPDATE sage.outbox_message SET status = 'pending', attempts = 0 WHERE id = $1`,
      [a],
    );
    await admin.query(`DELETE FROM sage.outbox_message WHERE id = $1`, [b]);
    await admin.query(
      `INSERT INTO sage.inbox_message (consumer, message_id, status, attempts, last_error)
       VALUES ('c1', 'm1', 'dead_letter', 3, 'boom'), ('c1', 'm2', 'processed', 1, NULL)`,
    );
    await admin.query(`DELETE FROM sage.inbox_message WHERE consumer = 'c1'`);
    const { rows } = await admin.query<{ action: string; target_id: string }>(
      `SELECT action, target_id FROM sage.audit_pending
       WHERE target_type IN ('outbox_message', 'inbox_message') ORDER BY id`,
    );
    expect(rows).toEqual([
      { action: 'outbox.replayed', target_id: a },
      { action: 'outbox.discarded', target_id: b },
      { action: 'inbox.dead_lettered', target_id: 'c1/m1' },
      { action: 'inbox.released', target_id: 'c1/m1' },
    ]);
    expect(JSON.stringify(rows)).not.toContain('example.com');
  });

  it('recordAudit writes in the caller transaction; a bad action is refused before writing', async () => {
    await expect(
      dataSource.transaction((m) =>
        recordAudit(m, { action: 'Keys Rotated', targetType: 'key', targetId: 'k1' }),
      ),
    ).rejects.toThrow(/not an action name/);
    await dataSource.transaction(async (m) => {
      await recordAudit(m, {
        action: 'keys.rotated',
        targetType: 'key',
        targetId: 'k2',
        detail: { from: 'k1', rewritten: 12 },
        actor: 'rotation-job',
      });
    });
    await expect(
      dataSource
        .transaction(async (m) => {
          await recordAudit(m, { action: 'subject.erased', targetType: 'subject', targetId: 's' });
          throw new Error('rolled back');
        })
        .catch(() => undefined),
    ).resolves.toBeUndefined();
    const { rows } = await admin.query<{ action: string; actor: string }>(
      `SELECT action, actor FROM sage.audit_pending WHERE target_type IN ('key', 'subject')`,
    );
    expect(rows).toEqual([{ action: 'keys.rotated', actor: 'rotation-job' }]);
  });

  it('seals concurrent writers into one contiguous, valid chain', async () => {
    const writers = Array.from({ length: 6 }, async () => {
      const c = new Client(db.connection);
      await c.connect();
      try {
        for (let i = 0; i < 25; i++) {
          await c.query('BEGIN');
          const id = await insertSaga(c);
          await c.query(`UPDATE sage.saga_instance SET status = 'completed' WHERE id = $1`, [id]);
          await c.query('COMMIT');
        }
      } finally {
        await c.end();
      }
    });
    let stop = false;
    const sealers = Array.from({ length: 2 }, async () => {
      while (!stop) await audit.sealBatch(40);
    });
    await Promise.all(writers);
    stop = true;
    await Promise.all(sealers);
    await audit.sealAll();
    const result = await audit.verify({ batchSize: 37 });
    expect(result).toEqual(expect.objectContaining({ ok: true, pending: 0 }));
    const { rows } = await admin.query<{ n: number; max: string }>(
      'SELECT count(*)::int AS n, max(seq) AS max FROM sage.audit_log',
    );
    expect(rows[0]!.n).toBe(Number(rows[0]!.max));
    expect(result.verified).toBe(rows[0]!.n);
    expect(rows[0]!.n).toBeGreaterThanOrEqual(300);
  });

  it('refuses UPDATE, DELETE and TRUNCATE of the log, even by its owner', async () => {
    await expect(
      admin.query(`UPDATE sage.audit_log SET actor = 'x' WHERE seq = 1`),
    ).rejects.toThrow(/append-only/);
    await expect(admin.query(`DELETE FROM sage.audit_log WHERE seq = 1`)).rejects.toThrow(
      /append-only/,
    );
    await expect(admin.query(`TRUNCATE sage.audit_log`)).rejects.toThrow(/append-only/);
    await expect(
      admin.query(
        `INSERT INTO sage.audit_checkpoint (seq, hash, pruned_until) VALUES (1, 'x', now())`,
      ),
    ).rejects.toThrow(/append-only/);
  });

  it('names the entry edited, deleted, inserted or reordered; the chain verifies again once repaired', async () => {
    await audit.sealAll();
    expect((await audit.verify()).ok).toBe(true);
    const row = async (seq: number) =>
      (
        await admin.query(
          // at as text: a JS Date would drop the microseconds the hash covers.
          `SELECT seq, at::text AS at, actor, action, target_type, target_id, detail, prev_hash, hash,
                  hmac_key_id, sealed_at FROM sage.audit_log WHERE seq = $1`,
          [seq],
        )
      ).rows[0] as Record<string, unknown>;

    // Edited.
    const five = await row(5);
    await tamper(`UPDATE sage.audit_log SET detail = '{"to":"failed"}' WHERE seq = 5`);
    expect((await audit.verify()).break).toEqual(
      expect.objectContaining({ kind: 'edited', seq: 5 }),
    );
    await tamper(`UPDATE sage.audit_log SET detail = $1 WHERE seq = 5`, [five.detail]);
    expect((await audit.verify()).ok).toBe(true);

    // Deleted.
    const seven = await row(7);
    await tamper(`DELETE FROM sage.audit_log WHERE seq = 7`);
    expect((await audit.verify()).break).toEqual(
      expect.objectContaining({ kind: 'deleted', seq: 7 }),
    );
    const cols = Object.keys(seven);
    await tamper(
      `INSERT INTO sage.audit_log (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`,
      cols.map((c) => seven[c]),
    );
    expect((await audit.verify()).ok).toBe(true);

    // Reordered: rows 9 and 10 swap their content (hashes included).
    const [nine, ten] = [await row(9), await row(10)];
    const content = [
      'at',
      'actor',
      'action',
      'target_type',
      'target_id',
      'detail',
      'prev_hash',
      'hash',
    ];
    const swap = (seq: number, from: Record<string, unknown>) =>
      tamper(
        `UPDATE sage.audit_log SET ${content.map((c, i) => `${c} = $${i + 2}`).join(', ')} WHERE seq = $1`,
        [seq, ...content.map((c) => from[c])],
      );
    await swap(9, ten);
    await swap(10, nine);
    expect((await audit.verify()).break).toEqual(
      expect.objectContaining({ kind: 'reordered', seq: 9 }),
    );
    await swap(9, nine);
    await swap(10, ten);
    expect((await audit.verify()).ok).toBe(true);

    // Inserted: a forged row appended (INSERT is what the runtime role may do).
    const { rows } = await admin.query<{ max: string }>(
      'SELECT max(seq) AS max FROM sage.audit_log',
    );
    const next = Number(rows[0]!.max) + 1;
    await admin.query(
      `INSERT INTO sage.audit_log (seq, at, actor, action, target_type, target_id, detail, prev_hash, hash)
       VALUES ($1, now(), 'mallory', 'saga.completed', 'saga', $2, '{}', $3, $3)`,
      [next, randomUUID(), 'a'.repeat(64)],
    );
    const forged = await audit.verify();
    expect(forged.break).toEqual(expect.objectContaining({ kind: 'inserted', seq: next }));
    expect(forged.ok).toBe(false);
    await tamper(`DELETE FROM sage.audit_log WHERE seq = $1`, [next]);
    expect((await audit.verify()).ok).toBe(true);
  });

  it('prunes old entries behind a checkpoint and keeps the rest verifiable', async () => {
    await insertSaga(admin);
    await audit.sealAll();
    const before = await audit.verify();
    const { rows } = await admin.query<{ at: Date }>(
      'SELECT at FROM sage.audit_log WHERE seq = 100',
    );
    const checkpoint = await audit.prune(rows[0]!.at);
    expect(checkpoint).toBeGreaterThan(0);
    expect(checkpoint).toBeLessThan(before.head.seq);
    const after = await audit.verify();
    expect(after).toEqual(
      expect.objectContaining({ ok: true, from: expect.objectContaining({ seq: checkpoint }) }),
    );
    expect(after.head).toEqual(before.head);
    // New entries go on from the head.
    await insertSaga(admin);
    await audit.sealAll();
    expect((await audit.verify()).ok).toBe(true);
    // Nothing newer than everything: no second checkpoint over the same entries.
    expect(await audit.prune(new Date(0))).toBeNull();

    // An entry slipped in below the checkpoint is named.
    await admin.query(
      `INSERT INTO sage.audit_log (seq, at, actor, action, target_type, target_id, detail, prev_hash, hash)
       VALUES (1, now(), 'mallory', 'saga.started', 'saga', 'x', '{}', 'x', 'x')`,
    );
    expect((await audit.verify()).break).toEqual(
      expect.objectContaining({ kind: 'inserted', seq: 1 }),
    );
    // A broken chain is never pruned over.
    await expect(audit.prune(new Date())).rejects.toThrow(/broken/);
    await tamper(`DELETE FROM sage.audit_log WHERE seq = 1`);
  });

  it('seals with HMAC under the active key and verifies only with that key', async () => {
    const keys = signingKeys({ keys: { a1: randomBytes(32) }, active: 'a1' });
    const hmac = new PostgresAuditLog(dataSource, { hmacKeys: keys });
    await insertSaga(admin);
    await hmac.sealAll();
    const { rows } = await admin.query<{ hmac_key_id: string | null }>(
      'SELECT hmac_key_id FROM sage.audit_log ORDER BY seq DESC LIMIT 1',
    );
    expect(rows[0]!.hmac_key_id).toBe('a1');
    expect((await hmac.verify()).ok).toBe(true);
    expect((await audit.verify()).break).toEqual(expect.objectContaining({ kind: 'unknown-key' }));
  });
});

describe('sage audit verify / seal', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });

  afterAll(async () => {
    await db?.drop();
  });

  const sage = async (...args: string[]) => {
    let out = '';
    let err = '';
    const c = db.connection;
    const code = await runCli([...args, '--json'], {
      env: {
        DATABASE_URL: `postgres://${c.user}:${c.password}@${c.host}:${c.port}/${c.database}`,
      },
      out: (t) => void (out += t),
      err: (t) => void (err += t),
    });
    return { code, out: out ? (JSON.parse(out) as Record<string, unknown>) : {}, err };
  };

  it('seals, verifies (exit 0), and exits 1 naming the entry once one is edited', async () => {
    await withClient(db.name, async (c) => {
      await c.query(
        `INSERT INTO sage.saga_instance (id, name, version, status, input)
         SELECT gen_random_uuid(), 'cli', 'v1', 'running', '{}' FROM generate_series(1, 3)`,
      );
    });
    expect((await sage('audit', 'verify')).out).toEqual(
      expect.objectContaining({ ok: true, pending: 3 }),
    );
    expect(await sage('audit', 'seal')).toEqual(
      expect.objectContaining({ code: 0, out: { sealed: 3, busy: false } }),
    );
    await withClient(db.name, async (c) => {
      await c.query('ALTER TABLE sage.audit_log DISABLE TRIGGER audit_log_append_only');
      await c.query(`UPDATE sage.audit_log SET actor = 'someone else' WHERE seq = 2`);
      await c.query('ALTER TABLE sage.audit_log ENABLE TRIGGER audit_log_append_only');
    });
    const broken = await sage('audit', 'verify');
    expect(broken.code).toBe(1);
    expect(broken.out.break).toEqual(expect.objectContaining({ kind: 'edited', seq: 2 }));
  });
});
