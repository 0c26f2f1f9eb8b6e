/**
 * `sage keys rotate` and `sage gdpr erase|export` against real PostgreSQL, through the same runCli
 * the `sage` bin calls (in this process: the bin's wiring is covered by sage-cli.int-spec.ts), with
 * keys from SAGE_ENCRYPTION_KEYS / SAGE_ENCRYPTION_ACTIVE_KEY: exit codes, output and the rows.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EntityManager } from 'typeorm';
import { openPostgresDatabase, type OpenedDatabase } from '@test/support/sage-databases';
import { pgConnection } from '@test/support/pg';
import { OutboxPublisher } from '../core/outbox/outbox-publisher';
import { validateDataProtection } from '../core/protection/data-protection-options';
import { DataProtector } from '../core/protection/data-protector';
import type { DataSubjectExport } from '../core/protection/data-subjects';
import { encryptionKeys } from '../core/protection/encryption-keys';
import type { KeyRotationReport } from '../core/protection/key-rotation';
import { ProtectingSagaStore } from '../core/protection/protecting-saga-store';
import { defineSaga } from '../core/saga/saga-builder';
import { SagaEngine } from '../core/saga/saga-engine';
import { verifyMessageSignature, type SignableMessage } from '../core/signing/message-signature';
import { signingKeys } from '../core/signing/signing-keys';
import { PostgresOutboxStore } from '../persistence/postgres/postgres-outbox-store';
import { PostgresSagaStore } from '../persistence/postgres/postgres-saga-store';
import { PostgresSubjectKeyStore } from '../persistence/postgres/postgres-subject-key-store';
import { runCli } from './cli';

jest.setTimeout(40_000);

const k1 = randomBytes(32);
const k2 = randomBytes(32);
const s1 = randomBytes(32);
let db: OpenedDatabase;
let engine: SagaEngine<EntityManager>;
let dir: string;
let env: NodeJS.ProcessEnv;
let release: () => void = () => undefined;

interface OrderInput {
  customer: { id: string; email: string };
  hold?: boolean;
}

beforeAll(async () => {
  db = await openPostgresDatabase(6);
  dir = mkdtempSync(join(tmpdir(), 'sage-gdpr-'));
  const c = pgConnection(db.dataSource.options.database as string);
  env = {
    DATABASE_URL: `postgres://${encodeURIComponent(c.user)}:${encodeURIComponent(c.password)}@${c.host}:${c.port}/${c.database}`,
    SAGE_ENCRYPTION_KEYS: `k1=${k1.toString('base64')},k2=${k2.toString('base64')}`,
    SAGE_ENCRYPTION_ACTIVE_KEY: 'k2',
    SAGE_SIGNING_KEYS: `s1=${s1.toString('base64')}`,
  };
  // The app, before rotation: k1 active, messages signed.
  const protector = new DataProtector<EntityManager>(
    validateDataProtection({
      keys: encryptionKeys({ active: 'k1', keys: { k1 } }),
      subjectKeys: new PostgresSubjectKeyStore(db.dataSource),
      sagas: { order: { subject: 'customer.id', input: ['customer.email'] } },
      messages: {
        'order.placed': { fields: ['email'], subject: 'customerId' },
        'order.noted': { fields: ['$'] },
      },
    })!,
  );
  engine = new SagaEngine<EntityManager>({
    store: new ProtectingSagaStore(new PostgresSagaStore(db.dataSource), protector),
    outbox: new OutboxPublisher<EntityManager>({
      writer: new PostgresOutboxStore(db.dataSource),
      protector,
      signingKeys: signingKeys({ active: 's1', keys: { s1 } }),
    }),
    recoveryIntervalMs: 50,
    shutdownTimeoutMs: 300,
  });
  engine.register(
    defineSaga<OrderInput, EntityManager>('order')
      .step('place', {
        compensatable: false,
        run: async (ctx) => {
          if (ctx.input.hold) await new Promise<void>((resolve) => (release = resolve));
          await ctx.emit({
            destination: 'orders',
            type: 'order.placed',
            payload: { customerId: ctx.input.customer.id, email: ctx.input.customer.email },
          });
          // Under the master key (no subject): rotation re-encrypts it and signs it again.
          await ctx.emit({ destination: 'notes', type: 'order.noted', payload: { note: 'n' } });
          return { ok: true };
        },
      })
      .build(),
  );
});
afterAll(async () => {
  release();
  await engine?.shutdown();
  await db?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function sage(argv: string[], extraEnv: NodeJS.ProcessEnv = {}) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, {
    env: { ...env, ...extraEnv },
    out: (t) => void (stdout += t),
    err: (t) => void (stderr += t),
  });
  return { code, stdout, stderr };
}

async function order(id: string, email: string, hold = false): Promise<string> {
  const { sagaId } = await engine.start('order', {
    customer: { id, email },
    ...(hold ? { hold } : {}),
  });
  if (!hold) expect((await engine.waitFor(sagaId, { timeoutMs: 10_000 })).status).toBe('completed');
  return sagaId;
}

const count = async (sql: string): Promise<number> =>
  Number(((await db.dataSource.query(sql)) as { n: string }[])[0]!.n);
const underK1 = () =>
  count(
    `SELECT (SELECT count(*) FROM sage.saga_instance WHERE input::text LIKE '%"m:k1"%')
          + (SELECT count(*) FROM sage.outbox_message WHERE payload::text LIKE '%"m:k1"%')
          + (SELECT count(*) FROM sage.subject_key WHERE master_key_id = 'k1') AS n`,
  );

it('keys rotate: dry run changes nothing, a run moves everything to the active key, a rerun finds nothing', async () => {
  await order('ada', 'ada@example.test');
  await order('bob', 'bob@example.test');
  const before = await underK1();
  expect(before).toBeGreaterThan(0);

  const missing = await sage(['keys', 'rotate'], { SAGE_ENCRYPTION_KEYS: '' });
  expect(missing.code).toBe(2);
  expect(missing.stderr).toContain('no encryption keys: set SAGE_ENCRYPTION_KEYS');

  const dry = await sage(['keys', 'rotate', '--dry-run', '--json']);
  expect(dry.code).toBe(0);
  const dryReport = JSON.parse(dry.stdout) as KeyRotationReport;
  expect(dryReport).toMatchObject({ dryRun: true, activeKeyId: 'k2' });
  expect(dryReport.subjectKeys.rewrapped).toBe(2);
  expect(await underK1()).toBe(before);

  const run = await sage(['keys', 'rotate', '--batch-size', '1']);
  expect(run).toMatchObject({ code: 0, stderr: '' });
  expect(run.stdout).toContain('done: everything found is under the active key');
  expect(await underK1()).toBe(0);
  const rows = (await db.dataSource.query(
    `SELECT id::text AS id, type, destination, key, payload, headers FROM sage.outbox_message`,
  )) as SignableMessage[];
  expect(rows).toHaveLength(4);
  for (const row of rows) verifyMessageSignature(row, signingKeys({ active: 's1', keys: { s1 } }));

  const again = await sage(['keys', 'rotate', '--json']);
  const report = JSON.parse(again.stdout) as KeyRotationReport;
  expect(again.code).toBe(0);
  expect(report.complete).toBe(true);
  expect(
    report.subjectKeys.scanned + Object.values(report.sources).reduce((n, s) => n + s.scanned, 0),
  ).toBe(0);

  expect((await sage(['keys', 'rotate', '--batch-size', '0'])).code).toBe(2);
});

it('gdpr export writes the subject data once to a private file; gdpr erase needs --yes, refuses a running saga, then shreds', async () => {
  const file = join(dir, 'ada.json');
  const exported = await sage(['gdpr', 'export', 'ada', '--out', file]);
  expect(exported).toMatchObject({ code: 0, stderr: '' });
  // Ada's saga and her order.placed (order.noted holds no subject data).
  expect(exported.stdout).toContain('1 saga, 1 outbox message, 0 inbox dead letters');
  expect(statSync(file).mode & 0o777).toBe(0o600);
  const doc = JSON.parse(readFileSync(file, 'utf8')) as DataSubjectExport;
  expect(doc.sagas[0]!.input).toEqual({ customer: { id: 'ada', email: 'ada@example.test' } });
  expect(doc.outboxMessages[0]!.payload).toEqual({ customerId: 'ada', email: 'ada@example.test' });
  expect(JSON.stringify(doc)).not.toContain('bob@');
  const overwrite = await sage(['gdpr', 'export', 'ada', '--out', file]);
  expect(overwrite.code).toBe(1);
  expect(overwrite.stderr).toContain('exists: the export is never written over a file');

  const unconfirmed = await sage(['gdpr', 'erase', 'ada']);
  expect(unconfirmed.code).toBe(2);
  expect(unconfirmed.stderr).toContain(
    "nothing changed: this would destroy the data subject's key",
  );
  expect(await count(`SELECT count(*) AS n FROM sage.subject_key WHERE subject_id = 'ada'`)).toBe(
    1,
  );

  const erased = await sage(['gdpr', 'erase', 'ada', '--yes', '--json']);
  expect(erased.code).toBe(0);
  expect((JSON.parse(erased.stdout) as { erasedKeyIds: string[] }).erasedKeyIds).toHaveLength(1);
  expect(await count(`SELECT count(*) AS n FROM sage.subject_key WHERE subject_id = 'ada'`)).toBe(
    0,
  );
  const after = JSON.parse((await sage(['gdpr', 'export', 'ada'])).stdout) as DataSubjectExport;
  expect([after.sagas, after.outboxMessages]).toEqual([[], []]);
  // Bob still exports.
  const bob = JSON.parse((await sage(['gdpr', 'export', 'bob'])).stdout) as DataSubjectExport;
  expect(bob.sagas).toHaveLength(1);

  const running = await order('cyd', 'cyd@example.test', true);
  const refused = await sage(['gdpr', 'erase', 'cyd', '--yes']);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toContain(
    `saga(s) holding its data are not finished: order ${running} (running)`,
  );
  expect(refused.stderr).not.toContain('cyd@');
  const forced = await sage(['gdpr', 'erase', 'cyd', '--yes', '--force']);
  expect(forced.code).toBe(0);
  expect(forced.stdout).toContain('forced: 1 unfinished saga can no longer continue');
});
