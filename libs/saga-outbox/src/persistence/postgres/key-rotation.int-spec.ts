/**
 * Key rotation on real PostgreSQL, under load: sagas written under master key k1 (inputs and step
 * results, per data subject and with the master key, their messages signed in the outbox), an
 * archived message and an inbox dead letter; then k2 becomes active, and `rotate()` runs while new
 * sagas run and the relay publishes. Afterwards every stored value decrypts with k2 alone, every
 * signature still holds, and no saga or message was lost or published twice.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { openPostgresDatabase, type OpenedDatabase } from '@test/support/sage-databases';
import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { deliveredMessageSnapshot } from '../../core/inbox/delivered-message-snapshot';
import type { JsonValue } from '../../core/json';
import { OutboxPublisher } from '../../core/outbox/outbox-publisher';
import { OutboxRelay } from '../../core/outbox/outbox-relay';
import type { KeyProvider } from '../../core/ports/key-provider';
import { validateDataProtection } from '../../core/protection/data-protection-options';
import { DataProtector, ProtectedLocation } from '../../core/protection/data-protector';
import { encryptionKeys } from '../../core/protection/encryption-keys';
import { KeyRotation, type KeyRotationReport } from '../../core/protection/key-rotation';
import { ProtectingSagaStore } from '../../core/protection/protecting-saga-store';
import { defineSaga } from '../../core/saga/saga-builder';
import { SagaEngine } from '../../core/saga/saga-engine';
import { signMessage, verifyMessageSignature } from '../../core/signing/message-signature';
import { signingKeys } from '../../core/signing/signing-keys';
import { analysePublications } from '../../testing/recording-broker';
import { waitUntil } from '../../testing/async';
import { PostgresOutboxStore } from './postgres-outbox-store';
import { PostgresProtectedDataStore } from './postgres-protected-data-store';
import { PostgresSagaStore } from './postgres-saga-store';
import { PostgresSubjectKeyStore } from './postgres-subject-key-store';

jest.setTimeout(60_000);

const k1 = randomBytes(32);
const k2 = randomBytes(32);
const signing = signingKeys({ active: 's1', keys: { s1: randomBytes(32) } });
const BEFORE = 40;
const DURING = 40;

let db: OpenedDatabase;
beforeAll(async () => {
  db = await openPostgresDatabase(16);
});
afterAll(async () => {
  await db?.close();
});

interface OrderInput {
  customer: { id: string; email: string };
  amount: number;
}

function protectorWith(keys: KeyProvider): DataProtector<EntityManager> {
  return new DataProtector<EntityManager>(
    validateDataProtection({
      keys,
      subjectKeys: new PostgresSubjectKeyStore(db.dataSource),
      subjectKeyCacheMs: 0,
      sagas: {
        order: {
          subject: 'customer.id',
          input: ['customer.email'],
          results: { charge: ['authorization'] },
        },
        note: { input: ['text'], results: { write: ['$'] } },
      },
      messages: {
        'order.charged': { fields: ['email'], subject: 'customerId' },
        'note.written': { fields: ['$'] },
      },
    })!,
  );
}

function engineWith(protector: DataProtector<EntityManager>): SagaEngine<EntityManager> {
  const sagaStore = new PostgresSagaStore(db.dataSource);
  const outbox = new OutboxPublisher<EntityManager>({
    writer: new PostgresOutboxStore(db.dataSource),
    protector,
    signingKeys: signing,
  });
  const engine = new SagaEngine<EntityManager>({
    store: new ProtectingSagaStore(sagaStore, protector),
    outbox,
    recoveryIntervalMs: 50,
    shutdownTimeoutMs: 2000,
  });
  engine.register(
    defineSaga<OrderInput, EntityManager>('order')
      .step('charge', {
        compensatable: false,
        run: async (ctx) => {
          await ctx.emit({
            destination: 'orders',
            type: 'order.charged',
            key: ctx.input.customer.id,
            payload: { customerId: ctx.input.customer.id, email: ctx.input.customer.email },
          });
          return { authorization: `auth-${ctx.input.amount}` };
        },
      })
      .step('ship', {
        dependsOn: ['charge'],
        compensatable: false,
        run: () => ({ carrier: 'post' }),
      })
      .build(),
  );
  engine.register(
    defineSaga<{ text: string }, EntityManager>('note')
      .step('write', {
        compensatable: false,
        run: async (ctx) => {
          await ctx.emit({
            destination: 'notes',
            type: 'note.written',
            payload: { text: ctx.input.text },
          });
          return { written: ctx.input.text };
        },
      })
      .build(),
  );
  return engine;
}

async function runSagas(
  engine: SagaEngine<EntityManager>,
  count: number,
  tag: string,
): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const { sagaId } =
      i % 2 === 0
        ? await engine.start('order', {
            customer: { id: `customer-${tag}-${i % 7}`, email: `person${i}@example.test` },
            amount: i,
          })
        : await engine.start('note', { text: `note ${tag} ${i}` });
    ids.push(sagaId);
  }
  for (const id of ids)
    expect((await engine.waitFor(id, { timeoutMs: 20_000 })).status).toBe('completed');
  return ids;
}

const count = async (sql: string): Promise<number> =>
  Number(((await db.dataSource.query(sql)) as { n: string }[])[0]!.n);

it('rotates everything to the new key while sagas run and the relay publishes; nothing lost or repeated', async () => {
  // --- before: k1 only -------------------------------------------------------------------------
  const oldProtector = protectorWith(encryptionKeys({ active: 'k1', keys: { k1 } }));
  const oldEngine = engineWith(oldProtector);
  const before = await runSagas(oldEngine, BEFORE, 'a');
  await oldEngine.shutdown();

  // An archived sent message and an inbox dead letter, both under k1 (the dead letter's snapshot
  // is the message as received: sealed and signed).
  const archived = await oldProtector.sealMessage({
    id: randomUUID(),
    type: 'note.written',
    payload: { text: 'archived note' },
    headers: {},
  });
  await db.dataSource.query(
    `INSERT INTO sage.outbox_message_archive (id, destination, key, type, payload, headers, saga_id, attempts, created_at, sent_at)
     VALUES ($1, 'notes', NULL, $2, $3::jsonb, $4::jsonb, NULL, 1, now(), now())`,
    [
      archived.id,
      archived.type,
      JSON.stringify(archived.payload),
      JSON.stringify(archived.headers),
    ],
  );
  const received = signMessage(
    {
      ...(await oldProtector.sealMessage({
        id: randomUUID(),
        type: 'note.written',
        payload: { text: 'dead note' },
        headers: {},
      })),
      destination: 'notes',
      key: null,
    },
    signing,
  );
  await db.dataSource.query(
    `INSERT INTO sage.inbox_message (consumer, message_id, status, attempts, last_error, message)
     VALUES ('billing', $1, 'dead_letter', 3, 'handler failed', $2::jsonb)`,
    [
      received.id,
      JSON.stringify(
        deliveredMessageSnapshot({ ...received, time: new Date(), deliveryAttempt: 3 }),
      ),
    ],
  );
  expect(
    await count(`SELECT count(*) AS n FROM sage.subject_key WHERE master_key_id = 'k1'`),
  ).toBeGreaterThan(0);

  // --- k2 made active everywhere; rotation under load -----------------------------------------
  const both = encryptionKeys({ active: 'k2', keys: { k1, k2 } });
  const newProtector = protectorWith(both);
  const engine = engineWith(newProtector);
  const broker = new InMemoryBroker();
  const relay = new OutboxRelay({
    store: new PostgresOutboxStore(db.dataSource),
    broker,
    relayId: 'relay-under-rotation',
    batchSize: 10,
    publishBatchSize: 5,
    pollIntervalMs: 10,
  });
  relay.start();
  const rotationStore = new PostgresProtectedDataStore(db.dataSource);
  let during: string[] = [];
  let first: KeyRotationReport;
  try {
    [during, first] = await Promise.all([
      runSagas(engine, DURING, 'b'),
      new KeyRotation(newProtector, rotationStore, { batchSize: 7, signingKeys: signing }).rotate(),
    ]);
    const total = await count(`SELECT count(*) AS n FROM sage.outbox_message`);
    await waitUntil(
      async () =>
        (await count(`SELECT count(*) AS n FROM sage.outbox_message WHERE status = 'sent'`)) ===
        total,
      'every message sent',
      20_000,
      20,
    );
  } finally {
    await relay.stop();
    await engine.shutdown();
  }
  expect(first.subjectKeys.rewrapped).toBeGreaterThan(0);
  expect(first.sources['saga-input'].rewritten).toBeGreaterThan(0);
  expect(first.sources['step-result'].rewritten).toBeGreaterThan(0);
  expect(first.sources.outbox.rewritten).toBeGreaterThan(0);
  expect(first.sources['outbox-archive'].rewritten).toBe(1);
  expect(first.sources['inbox-dead-letter'].rewritten).toBe(1);

  // Resumable: a second run finishes what concurrent writers won, a third finds nothing left.
  const second = await new KeyRotation(newProtector, rotationStore, {
    signingKeys: signing,
  }).rotate();
  expect(second.complete).toBe(true);
  const third = await new KeyRotation(newProtector, rotationStore, {
    signingKeys: signing,
  }).rotate();
  expect(third.subjectKeys.scanned).toBe(0);
  expect(Object.values(third.sources).every((s) => s.scanned === 0)).toBe(true);

  // --- after: k2 alone reads everything ----------------------------------------------------------
  for (const [table, column] of [
    ['saga_instance', 'input'],
    ['saga_step', 'result'],
    ['outbox_message', 'payload'],
    ['outbox_message_archive', 'payload'],
    ['inbox_message', 'message'],
  ] as const)
    expect(
      await count(`SELECT count(*) AS n FROM sage.${table} WHERE ${column}::text LIKE '%"m:k1"%'`),
    ).toBe(0);
  expect(
    await count(`SELECT count(*) AS n FROM sage.subject_key WHERE master_key_id <> 'k2'`),
  ).toBe(0);

  const onlyNew = protectorWith(encryptionKeys({ active: 'k2', keys: { k2 } }));
  const sagas = (await db.dataSource.query(
    `SELECT id::text AS id, name, status, input FROM sage.saga_instance`,
  )) as { id: string; name: string; status: string; input: JsonValue }[];
  expect(sagas).toHaveLength(BEFORE + DURING);
  expect(sagas.every((s) => s.status === 'completed')).toBe(true);
  for (const saga of sagas) {
    const input = (await onlyNew.open(saga.input, ProtectedLocation.sagaInput(saga.id))) as Record<
      string,
      JsonValue
    >;
    expect(JSON.stringify(input)).not.toContain('sage:enc');
  }
  const steps = (await db.dataSource.query(
    `SELECT saga_id::text AS saga_id, name, result FROM sage.saga_step WHERE result IS NOT NULL`,
  )) as { saga_id: string; name: string; result: JsonValue }[];
  for (const step of steps) {
    const result = await onlyNew.open(
      step.result,
      ProtectedLocation.stepResult(step.saga_id, step.name),
    );
    expect(JSON.stringify(result)).not.toContain('sage:enc');
  }
  const rows = (await db.dataSource.query(
    `SELECT id::text AS id, type, destination, key, payload, headers FROM sage.outbox_message
     UNION ALL SELECT id::text, type, destination, key, payload, headers FROM sage.outbox_message_archive`,
  )) as {
    id: string;
    type: string;
    destination: string;
    key: string | null;
    payload: JsonValue;
    headers: Record<string, string>;
  }[];
  for (const row of rows) {
    const payload = await onlyNew.open(row.payload, ProtectedLocation.message(row.id, row.type));
    expect(JSON.stringify(payload)).not.toContain('sage:enc');
    if (row.headers['sage-signature']) verifyMessageSignature(row, signing);
  }
  const [deadLetter] = (await db.dataSource.query(
    `SELECT message FROM sage.inbox_message WHERE consumer = 'billing'`,
  )) as {
    message: {
      id: string;
      type: string;
      destination: string;
      key: string | null;
      payload: JsonValue;
      headers: Record<string, string>;
    };
  }[];
  expect(
    await onlyNew.open(
      deadLetter!.message.payload,
      ProtectedLocation.message(received.id, received.type),
    ),
  ).toEqual({ text: 'dead note' });
  verifyMessageSignature(deadLetter!.message, signing);

  // Nothing lost or repeated: each outbox row published exactly once (the archived one never was).
  const expected = rows.filter((r) => r.id !== archived.id).map((r) => ({ id: r.id, key: r.key }));
  expect(expected).toHaveLength(before.length + during.length);
  const analysis = analysePublications(broker.published, expected);
  expect(analysis.missing).toEqual([]);
  expect(analysis.duplicates).toBe(0);
  // What was published decrypts with the keys consumers hold during the rotation (k1 and k2).
  for (const m of broker.published) {
    const open = await newProtector.open(m.payload, ProtectedLocation.message(m.id, m.type));
    expect(JSON.stringify(open)).not.toContain('sage:enc');
  }
});
