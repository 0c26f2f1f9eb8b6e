/**
 * Logs out of the box: with SagaOutboxModule alone (no SageEventLogModule), a saga that
 * compensates and one that fails are logged at warn / error through Nest's Logger, one line per
 * event under the default ConsoleLogger, structured objects under nestjs-pino; never the saga's
 * input or a step's result. Real PostgreSQL; the broker is in-memory (the sagas emit nothing).
 */
import 'reflect-metadata';
import { Writable } from 'node:stream';
import { stripVTControlCharacters } from 'node:util';
import { ConsoleLogger, Logger, Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Logger as PinoNestLogger, LoggerModule } from 'nestjs-pino';
import type { EntityManager } from 'typeorm';
import { createTestDatabase, sagePostgresOptions, type TestDatabase } from '@test/support/pg';
import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { defineSaga } from '../../core/saga/saga-builder';
import { waitUntil } from '../../testing/async';
import { SageEventLogModule } from '../observability/sage-logging';
import { SagaOutboxModule } from '../saga-outbox.module';
import { SagaService } from '../saga.service';

jest.setTimeout(60_000);

/** Personal data in the input and a step's result: must never reach a log line. */
const INPUT = { email: 'jane.doe@example.com' };
const SECRET_RESULT = { card: '4111111111111111' };
const fast = { initialDelayMs: 1, maxDelayMs: 5 };

const compensating = defineSaga<typeof INPUT, EntityManager>('log-compensating')
  .step('reserve', { run: () => SECRET_RESULT, compensate: () => undefined })
  .step('charge', {
    dependsOn: ['reserve'],
    retry: { maxAttempts: 2, ...fast },
    run: () => {
      throw new Error('card declined');
    },
    compensate: () => undefined,
  })
  .build();

const failing = defineSaga<typeof INPUT, EntityManager>('log-failing')
  .step('reserve', {
    run: () => SECRET_RESULT,
    compensationRetry: { maxAttempts: 1 },
    compensate: () => {
      throw new Error('release refused');
    },
  })
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

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  Logger.overrideLogger(new ConsoleLogger());
  await db?.drop();
});

function appModule(extra: NonNullable<Parameters<typeof Module>[0]>['imports'] = []) {
  @Module({
    imports: [
      SagaOutboxModule.forRoot({
        postgres: { ...sagePostgresOptions(db.connection), poolSize: 3 },
        sagas: [compensating, failing] as never[],
        broker: new InMemoryBroker(),
        saga: { recoveryIntervalMs: 50 },
        outbox: { relay: { pollIntervalMs: 50 }, retention: { enabled: false } },
      }),
      ...extra,
    ],
  })
  class AppModule {}
  return AppModule;
}

/** Runs both sagas to their end; resolves with their ids once `done(lines)` holds. */
async function runBoth(app: INestApplicationContext): Promise<{ comp: string; fail: string }> {
  const sagas = app.get(SagaService);
  const comp = (await sagas.start('log-compensating', INPUT)).sagaId;
  const fail = (await sagas.start('log-failing', INPUT)).sagaId;
  expect((await sagas.waitFor(comp)).status).toBe('compensated');
  expect((await sagas.waitFor(fail)).status).toBe('failed');
  return { comp, fail };
}

describe('under the default ConsoleLogger', () => {
  it('writes one line per event at the right level, with the saga, step and error in the text', async () => {
    const written: string[] = [];
    const capture = (stream: 'stdout' | 'stderr') =>
      jest.spyOn(process[stream], 'write').mockImplementation((chunk: string | Uint8Array) => {
        written.push(String(chunk));
        return true;
      });
    const spies = [capture('stdout'), capture('stderr')];
    // The default logger (a ConsoleLogger in text mode), quiet below warn for the test's output.
    const app = await NestFactory.createApplicationContext(appModule(), {
      logger: ['warn', 'error'],
      abortOnError: false,
    });
    let ids: { comp: string; fail: string };
    try {
      await app.init();
      ids = await runBoth(app);
      await waitUntil(
        () => written.some((w) => w.includes(`${ids.fail} failed:`)),
        'the failed saga logged',
        10_000,
      );
    } finally {
      await app.close();
      for (const spy of spies) spy.mockRestore();
    }
    const sage = written.filter((w) => w.includes('[Sage]'));
    for (const chunk of sage) {
      // One chunk per line: a newline at its end and nowhere else.
      expect(chunk.endsWith('\n')).toBe(true);
      expect(chunk.slice(0, -1)).not.toContain('\n');
      expect(chunk).not.toContain(INPUT.email);
      expect(chunk).not.toContain(SECRET_RESULT.card);
    }
    const of = (sagaId: string) =>
      sage
        .map((chunk) => stripVTControlCharacters(chunk))
        .filter((line) => line.includes(sagaId))
        .map((line) =>
          line.replace(/^.*? (WARN|ERROR) \[Sage\] /, '$1 ').replace(/( \+\d+ms)?\n$/, ''),
        );

    const c = ids!.comp;
    expect(of(c)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^WARN saga log-compensating ${c}: step "charge" attempt 1 failed, retrying in \\d+ ms: card declined sagaId=${c} step=charge attempt=1 retryInMs=\\d+ event=step.retrying$`,
        ),
      ),
      `ERROR saga log-compensating ${c}: step "charge" failed for good (attempt 2, no retry left): card declined sagaId=${c} step=charge attempt=2 event=step.failed`,
      `WARN saga log-compensating ${c}: step "reserve" compensated sagaId=${c} step=reserve attempt=1 event=compensation.completed`,
      expect.stringMatching(
        new RegExp(
          `^WARN saga log-compensating ${c} compensated after step "charge" failed: card declined sagaId=${c} step=charge durationMs=\\d+ event=saga.compensated$`,
        ),
      ),
    ]);

    const f = ids!.fail;
    expect(of(f)).toEqual([
      `ERROR saga log-failing ${f}: step "charge" failed for good (attempt 1, no retry left): card declined sagaId=${f} step=charge attempt=1 event=step.failed`,
      `ERROR saga log-failing ${f}: compensation of step "reserve" failed for good (attempt 1): release refused sagaId=${f} step=reserve attempt=1 event=compensation.failed`,
      expect.stringMatching(
        new RegExp(
          `^ERROR saga log-failing ${f} failed: compensation of step "reserve" failed after 1 attempts: release refused\\. Earlier failure: step "charge" failed: card declined\\. The saga is parked as failed; undo the step by hand\\. sagaId=${f} step=reserve durationMs=\\d+ event=saga.failed$`,
        ),
      ),
    ]);
  });
});

describe('under nestjs-pino', () => {
  it('writes each event as one JSON object with msg and the fields, once, also beside SageEventLogModule', async () => {
    const lines: Record<string, unknown>[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean))
          lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const app = await NestFactory.createApplicationContext(
      appModule([
        LoggerModule.forRoot({ pinoHttp: [{ level: 'info' }, stream] }),
        SageEventLogModule,
      ]),
      { bufferLogs: true, abortOnError: false },
    );
    app.useLogger(app.get(PinoNestLogger));
    let ids: { comp: string; fail: string };
    try {
      await app.init();
      ids = await runBoth(app);
      await waitUntil(
        () => lines.some((l) => l['sagaId'] === ids.fail && l['event'] === 'saga.failed'),
        'the failed saga logged',
        10_000,
      );
    } finally {
      await app.close();
    }
    const text = JSON.stringify(lines);
    expect(text).not.toContain(INPUT.email);
    expect(text).not.toContain(SECRET_RESULT.card);

    const of = (sagaId: string) =>
      lines.filter((l) => l['sagaId'] === sagaId).map((l) => [l['level'], l['event']]);
    // pino levels: 30 info, 40 warn, 50 error. Info lines come from SageEventLogModule.
    expect(of(ids!.comp)).toEqual([
      [30, 'saga.started'],
      [40, 'step.retrying'],
      [50, 'step.failed'],
      [30, 'saga.compensating'],
      [40, 'compensation.completed'],
      [40, 'saga.compensated'],
    ]);
    expect(of(ids!.fail)).toEqual([
      [30, 'saga.started'],
      [50, 'step.failed'],
      [30, 'saga.compensating'],
      [50, 'compensation.failed'],
      [50, 'saga.failed'],
    ]);
    const compensated = lines.find(
      (l) => l['sagaId'] === ids.comp && l['event'] === 'saga.compensated',
    );
    expect(compensated).toMatchObject({
      level: 40,
      context: 'Sage',
      msg: `saga log-compensating ${ids!.comp} compensated after step "charge" failed: card declined`,
      sagaId: ids!.comp,
      saga: 'log-compensating',
      step: 'charge',
      reason: 'step "charge" failed: card declined',
    });
    expect(typeof compensated!['durationMs']).toBe('number');
  });
});
