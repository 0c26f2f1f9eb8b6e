/**
 * SagaOutboxModule seals the audit log on its own (`audit`, on by default): on real PostgreSQL a
 * saga's transitions, recorded by the triggers, end up in the hash chain and `verify` passes;
 * `enabled: false` seals nothing, `autoStart: false` builds the sealer without starting it.
 */
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { EntityManager } from 'typeorm';
import { createTestDatabase, sagePostgresOptions, type TestDatabase } from '@test/support/pg';
import {
  SagaOutboxModule,
  SagaService,
  SageDatabase,
  type SagaOutboxModuleOptions,
} from '../../index';
import { defineSaga } from '../../core/saga/saga-builder';
import { signingKeys } from '../../core/signing/signing-keys';
import { waitUntil } from '../../testing/async';
import { AuditSealerProvider } from './audit-sealer.provider';

jest.setTimeout(30_000);

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const audited = defineSaga<{ n: number }, EntityManager>('audited-order')
  .step('reserve', { run: () => ({ reserved: true }), compensate: () => undefined })
  .step('charge', { run: () => ({ charged: true }), compensatable: false })
  .build();

async function appWith(
  options: Partial<SagaOutboxModuleOptions>,
): Promise<INestApplicationContext> {
  @Module({
    imports: [
      SagaOutboxModule.forRoot({
        postgres: { ...sagePostgresOptions(db.connection), poolSize: 3 },
        outbox: { relay: { enabled: false }, retention: { enabled: false } },
        inbox: { retention: { enabled: false } },
        saga: { retention: { enabled: false } },
        sagas: [audited],
        ...options,
      }),
    ],
  })
  class AppModule {}
  const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  await app.init();
  return app;
}

/** Runs the saga to completion (the engine is started by hand with autoStart: false). */
async function runSaga(app: INestApplicationContext): Promise<string> {
  const sagas = app.get(SagaService);
  const { sagaId } = await sagas.start('audited-order', { n: 1 });
  expect((await sagas.waitFor(sagaId)).status).toBe('completed');
  return sagaId;
}

/** The saga's audit entries (its own and its steps'), pending and sealed. */
async function entriesOf(app: INestApplicationContext, sagaId: string) {
  const q = (table: string) =>
    app
      .get(SageDatabase)
      .dataSource.query<{ action: string }[]>(
        `SELECT action FROM sage.${table} WHERE target_id = $1 OR target_id LIKE $1 || '/%' ORDER BY ${table === 'audit_log' ? 'seq' : 'id'}`,
        [sagaId],
      )
      .then((rows) => rows.map((r) => r.action));
  return { pending: await q('audit_pending'), sealed: await q('audit_log') };
}

it('enabled: false seals nothing: the entries wait in audit_pending', async () => {
  const app = await appWith({ audit: { enabled: false, sealIntervalMs: 20 } });
  try {
    expect(app.get(AuditSealerProvider).sealer).toBeUndefined();
    const sagaId = await runSaga(app);
    const entries = await entriesOf(app, sagaId);
    expect(entries.sealed).toEqual([]);
    expect(entries.pending).toEqual(
      expect.arrayContaining(['saga.started', 'step.completed', 'saga.completed']),
    );
  } finally {
    await app.close();
  }
});

it('autoStart: false builds the sealer but does not start it', async () => {
  const app = await appWith({ autoStart: false, audit: { sealIntervalMs: 20 } });
  try {
    const sealer = app.get(AuditSealerProvider).sealer!;
    const log = app.get(AuditSealerProvider).log;
    const before = await log.pendingCount();
    expect(before).toBeGreaterThan(0); // the first test's entries
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(sealer.stats.loop.ticks).toBe(0);
    expect(await log.pendingCount()).toBe(before);
    sealer.start();
    await waitUntil(async () => (await log.pendingCount()) === 0, 'the sealer, once started');
  } finally {
    await app.close();
  }
});

it("by default seals a saga's transitions into the chain, HMAC-signed with audit.hmacKeys, and verify passes", async () => {
  const hmacKeys = signingKeys({ active: 'audit-1', keys: { 'audit-1': randomBytes(32) } });
  const app = await appWith({ audit: { sealIntervalMs: 20, hmacKeys } });
  try {
    const provider = app.get(AuditSealerProvider);
    const sagaId = await runSaga(app);
    await waitUntil(
      async () => (await entriesOf(app, sagaId)).pending.length === 0,
      "the saga's entries to be sealed",
    );
    const { sealed } = await entriesOf(app, sagaId);
    expect(sealed[0]).toBe('saga.started');
    expect(sealed).toContain('step.completed');
    expect(sealed[sealed.length - 1]).toBe('saga.completed');
    expect(provider.sealer!.stats.sealedTotal).toBeGreaterThanOrEqual(sealed.length);
    const [signed] = await app
      .get(SageDatabase)
      .dataSource.query<{ hmac_key_id: string | null }[]>(
        `SELECT hmac_key_id FROM sage.audit_log WHERE target_id = $1`,
        [sagaId],
      );
    expect(signed?.hmac_key_id).toBe('audit-1');
    const verification = await provider.log.verify({ requireHmac: false });
    expect(verification).toMatchObject({ ok: true, pending: 0 });
    expect(verification.verified).toBeGreaterThanOrEqual(sealed.length);
  } finally {
    await app.close();
  }
});
