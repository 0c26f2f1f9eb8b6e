/**
 * Data-subject erasure (crypto-shredding) and export on real PostgreSQL: sagas, outbox messages
 * (pending and archived) and an inbox dead letter holding two subjects' data; export returns exactly
 * one subject's readable data; erasure is refused while that subject's saga is running (unless
 * forced), then shreds every copy at once, leaves the other subject readable, and is audited without
 * the subject id in clear.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { openPostgresDatabase, type OpenedDatabase } from '@test/support/sage-databases';
import { deliveredMessageSnapshot } from '../../core/inbox/delivered-message-snapshot';
import type { JsonValue } from '../../core/json';
import { OutboxPublisher } from '../../core/outbox/outbox-publisher';
import { validateDataProtection } from '../../core/protection/data-protection-options';
import { DataProtector, ProtectedLocation } from '../../core/protection/data-protector';
import { SubjectHasRunningSagasError } from '../../core/protection/data-subject-errors';
import { DataSubjects, subjectAuditId } from '../../core/protection/data-subjects';
import { encryptionKeys } from '../../core/protection/encryption-keys';
import { ProtectingSagaStore } from '../../core/protection/protecting-saga-store';
import { DataUnreadableError } from '../../core/protection/protection-errors';
import { defineSaga } from '../../core/saga/saga-builder';
import { SagaEngine } from '../../core/saga/saga-engine';
import { PostgresOutboxStore } from './postgres-outbox-store';
import { PostgresProtectedDataStore } from './postgres-protected-data-store';
import { PostgresSagaStore } from './postgres-saga-store';
import { PostgresSubjectKeyStore } from './postgres-subject-key-store';

jest.setTimeout(40_000);

const keys = encryptionKeys({ active: 'k1', keys: { k1: randomBytes(32) } });
let db: OpenedDatabase;
let engine: SagaEngine<EntityManager>;
let protector: DataProtector<EntityManager>;
let subjects: DataSubjects;
const gates = new Map<string, () => void>();

interface OrderInput {
  customer: { id: string; email: string };
  hold?: string;
}

beforeAll(async () => {
  db = await openPostgresDatabase(10);
  protector = new DataProtector<EntityManager>(
    validateDataProtection({
      keys,
      subjectKeys: new PostgresSubjectKeyStore(db.dataSource),
      subjectKeyCacheMs: 60_000,
      sagas: {
        order: { subject: 'customer.id', input: ['customer.email'], results: { charge: ['card'] } },
      },
      messages: { 'order.charged': { fields: ['email'], subject: 'customerId' } },
    })!,
  );
  engine = new SagaEngine<EntityManager>({
    store: new ProtectingSagaStore(new PostgresSagaStore(db.dataSource), protector),
    outbox: new OutboxPublisher<EntityManager>({
      writer: new PostgresOutboxStore(db.dataSource),
      protector,
    }),
    recoveryIntervalMs: 50,
    shutdownTimeoutMs: 500,
  });
  engine.register(
    defineSaga<OrderInput, EntityManager>('order')
      .step('charge', {
        compensatable: false,
        run: async (ctx) => {
          if (ctx.input.hold)
            await new Promise<void>((resolve) => gates.set(ctx.input.hold!, resolve));
          await ctx.emit({
            destination: 'orders',
            type: 'order.charged',
            payload: { customerId: ctx.input.customer.id, email: ctx.input.customer.email },
          });
          return { card: `card of ${ctx.input.customer.email}` };
        },
      })
      .build(),
  );
  subjects = new DataSubjects(protector, new PostgresProtectedDataStore(db.dataSource), {
    batchSize: 2,
  });
});
afterAll(async () => {
  for (const release of gates.values()) release();
  await engine?.shutdown();
  await db?.close();
});

async function order(customerId: string, email: string, hold?: string): Promise<string> {
  const { sagaId } = await engine.start('order', {
    customer: { id: customerId, email },
    ...(hold ? { hold } : {}),
  });
  if (!hold) expect((await engine.waitFor(sagaId, { timeoutMs: 10_000 })).status).toBe('completed');
  return sagaId;
}

/** A dead letter in the inbox of a consumer, holding `payload` sealed for its subject. */
async function deadLetter(payload: { customerId: string; email: string }): Promise<string> {
  const sealed = await protector.sealMessage({
    id: randomUUID(),
    type: 'order.charged',
    payload,
    headers: {},
  });
  await db.dataSource.query(
    `INSERT INTO sage.inbox_message (consumer, message_id, status, attempts, last_error, message)
     VALUES ('billing', $1, 'dead_letter', 3, 'handler failed', $2::jsonb)`,
    [
      sealed.id,
      JSON.stringify(
        deliveredMessageSnapshot({
          ...sealed,
          destination: 'orders',
          key: null,
          time: new Date(),
          deliveryAttempt: 3,
        }),
      ),
    ],
  );
  return sealed.id;
}

it('exports exactly the subject readable data, refuses to erase a subject with a running saga, then shreds every copy', async () => {
  const ada1 = await order('ada', 'ada@example.test');
  const ada2 = await order('ada', 'ada.work@example.test');
  const bob = await order('bob', 'bob@example.test');
  const adaLetter = await deadLetter({ customerId: 'ada', email: 'ada@example.test' });
  // An archived copy of one of Ada's messages (retention moves rows: same id, so it decrypts there).
  await db.dataSource.query(
    `INSERT INTO sage.outbox_message_archive (id, destination, key, type, payload, headers, saga_id, attempts, created_at, sent_at)
     SELECT id, destination, key, type, payload, headers, saga_id, 1, created_at, now()
     FROM sage.outbox_message WHERE saga_id = $1`,
    [ada1],
  );

  const exported = await subjects.export('ada');
  expect(exported.format).toBe('sage.data-subject-export.v1');
  expect(exported.unreadable).toEqual([]);
  expect(exported.sagas.map((s) => s.id).sort()).toEqual([ada1, ada2].sort());
  const first = exported.sagas.find((s) => s.id === ada1)!;
  expect(first).toMatchObject({
    name: 'order',
    status: 'completed',
    input: { customer: { id: 'ada', email: 'ada@example.test' } },
    steps: [{ name: 'charge', status: 'completed', result: { card: 'card of ada@example.test' } }],
  });
  expect(exported.outboxMessages).toHaveLength(3);
  expect(exported.outboxMessages.filter((m) => m.status === 'archived')).toHaveLength(1);
  for (const m of exported.outboxMessages)
    expect(m).toMatchObject({
      type: 'order.charged',
      destination: 'orders',
      payload: { customerId: 'ada' },
    });
  expect(exported.inboxDeadLetters).toEqual([
    {
      consumer: 'billing',
      messageId: adaLetter,
      type: 'order.charged',
      payload: { customerId: 'ada', email: 'ada@example.test' },
    },
  ]);
  expect(JSON.stringify(exported)).not.toContain('bob@example.test');
  expect(JSON.stringify(exported)).not.toContain('sage:enc');

  // A running saga of Ada's: erasure refused, naming it; nothing erased.
  const running = await order('ada', 'ada.new@example.test', 'ada-hold');
  await expect(subjects.erase('ada')).rejects.toThrow(SubjectHasRunningSagasError);
  await expect(subjects.erase('ada')).rejects.toThrow(running);
  await expect(subjects.erase('ada')).rejects.not.toThrow('ada@');
  expect((await subjects.export('ada')).sagas).toHaveLength(3);
  gates.get('ada-hold')!();
  expect((await engine.waitFor(running, { timeoutMs: 10_000 })).status).toBe('completed');

  const erased = await subjects.erase('ada');
  expect(erased.erasedKeyIds).toHaveLength(1);
  expect(erased.unfinishedSagas).toEqual([]);
  expect(erased.auditSubjectId).toBe(subjectAuditId(keys, 'ada'));

  // Every copy unreadable at once: sagas, outbox, archive, dead letter, through a fresh protector
  // (no cached key) and through the one that erased (its cache forgot the key).
  const fresh = new DataProtector<EntityManager>(
    validateDataProtection({ keys, subjectKeys: new PostgresSubjectKeyStore(db.dataSource) })!,
  );
  const [stored] = (await db.dataSource.query(
    `SELECT input FROM sage.saga_instance WHERE id = $1`,
    [ada1],
  )) as { input: JsonValue }[];
  for (const p of [fresh, protector])
    await expect(p.open(stored!.input, ProtectedLocation.sagaInput(ada1))).rejects.toMatchObject({
      reason: 'subject-erased',
    });
  const payloads = (await db.dataSource.query(
    `SELECT id::text AS id, type, payload FROM sage.outbox_message WHERE payload::text LIKE '%"customerId": "ada"%'
     UNION ALL SELECT id::text, type, payload FROM sage.outbox_message_archive`,
  )) as { id: string; type: string; payload: JsonValue }[];
  expect(payloads).toHaveLength(4);
  for (const m of payloads)
    await expect(
      fresh.open(m.payload, ProtectedLocation.message(m.id, m.type)),
    ).rejects.toBeInstanceOf(DataUnreadableError);
  const after = await subjects.export('ada');
  expect([after.sagas, after.outboxMessages, after.inboxDeadLetters]).toEqual([[], [], []]);

  // Bob is untouched.
  const bobs = await subjects.export('bob');
  expect(bobs.sagas.map((s) => s.id)).toEqual([bob]);
  expect(bobs.sagas[0]!.input).toEqual({ customer: { id: 'bob', email: 'bob@example.test' } });

  // Audited, without the subject id in clear.
  const audit = (await db.dataSource.query(
    `SELECT target_type, target_id, detail::text AS detail FROM sage.audit_pending WHERE action = 'subject.erased'
     UNION ALL SELECT target_type, target_id, detail::text FROM sage.audit_log WHERE action = 'subject.erased'`,
  )) as { target_type: string; target_id: string; detail: string }[];
  expect(audit).toHaveLength(1);
  expect(audit[0]).toMatchObject({
    target_type: 'data-subject',
    target_id: subjectAuditId(keys, 'ada'),
  });
  expect(audit[0]!.detail).not.toContain('ada');
});

it('erases with force a subject whose saga is still running, and reports it', async () => {
  const running = await order('cyd', 'cyd@example.test', 'cyd-hold');
  await expect(subjects.erase('cyd')).rejects.toThrow(SubjectHasRunningSagasError);
  const erased = await subjects.erase('cyd', { force: true });
  expect(erased.erasedKeyIds).toHaveLength(1);
  expect(erased.unfinishedSagas).toEqual([{ id: running, name: 'order', status: 'running' }]);
  // Erasing a subject with no key is a no-op that still answers.
  expect((await subjects.erase('nobody')).erasedKeyIds).toEqual([]);
});
