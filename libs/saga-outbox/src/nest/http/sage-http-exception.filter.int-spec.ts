/**
 * SageHttpExceptionFilter in real Nest HTTP apps (Express): every mapped error gives its status and
 * body, through SagaService on real PostgreSQL where a request can cause it and from a route that
 * throws it otherwise; unmapped Sage errors, HttpExceptions and other errors get Nest's default
 * answer; 5xx bodies carry no internals; and all three ways of registering it work.
 */
import 'reflect-metadata';
import {
  BadRequestException,
  Body,
  Controller,
  Get,
  Headers,
  HttpCode,
  Module,
  NotFoundException,
  Param,
  Post,
  type INestApplication,
  type ModuleMetadata,
} from '@nestjs/common';
import { APP_FILTER, NestFactory } from '@nestjs/core';
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import {
  BrokerUnavailableError,
  InvalidOptionsError,
  LeaseLostError,
  NotSerializableError,
  OutboxMessageInvalidError,
  OutboxMessageNotFoundError,
  OutboxMessageTooLargeError,
  OutboxTransactionRequiredError,
  Saga,
  SagaCreateConflictError,
  SagaDefinitionError,
  SagaIdempotencyConflictError,
  SagaInputInvalidError,
  SagaNotFoundError,
  SagaOutboxModule,
  SagaService,
  SagaStep,
  SagaStoreUnavailableError,
  SagaWaitTimeoutError,
  SageDatabase,
  SageHttpExceptionFilter,
  UnknownSagaError,
  type SagaOutboxModuleOptions,
  type SagaStepContext,
} from '../../index';

interface HttpOrder {
  customer: string;
  quantity: number;
  /** Holds the step until the test releases it (to time out a wait). */
  hold?: boolean;
}

/** Released by the test: a held step waits for it. */
let releaseHeld: () => void = () => undefined;
let held = new Promise<void>((resolve) => (releaseHeld = resolve));

@Saga('http-order', {
  validate: (i: HttpOrder) =>
    Number.isInteger(i?.quantity) && i.quantity > 0 ? true : 'quantity must be a positive integer',
})
class HttpOrderSaga {
  @SagaStep('accept', { compensatable: false })
  async accept(ctx: SagaStepContext<HttpOrder>) {
    if (ctx.input.hold) await held;
    return { accepted: ctx.input.quantity };
  }
}

@Controller()
class OrdersController {
  constructor(private readonly sagas: SagaService) {}

  @Post('orders')
  @HttpCode(202)
  place(@Body() body: HttpOrder, @Headers('idempotency-key') key?: string) {
    return this.sagas.start(HttpOrderSaga, body, { idempotencyKey: key });
  }

  @Get('orders/by-key/:key')
  async byKey(@Param('key') key: string) {
    const saga = await this.sagas.findByKey(HttpOrderSaga, key);
    if (!saga) throw new NotFoundException(`no order with key ${key}`);
    return saga;
  }

  @Get('sagas/:id')
  get(@Param('id') id: string) {
    return this.sagas.get(id);
  }

  @Get('sagas/:id/wait')
  wait(@Param('id') id: string) {
    return this.sagas.waitFor(id, { timeoutMs: 50 });
  }
}

/** Text that must never reach a client: it stands for a database error's details. */
const SECRET = 'password authentication failed for user "payroll_admin"';

/** Every error a route can be made to throw, by name. */
const THROWN: Record<string, () => Error> = {
  'input-invalid': () => new SagaInputInvalidError('http-order', 'customer is required'),
  'not-serializable': () =>
    new NotSerializableError('Input of saga "http-order"', '$.note', 'circular reference'),
  'key-invalid': () =>
    new InvalidOptionsError('idempotencyKey', 'must be a non-empty string of at most 256'),
  'saga-not-found': () => new SagaNotFoundError('0190a0b0-0000-7000-8000-000000000000'),
  'message-not-found': () =>
    new OutboxMessageNotFoundError('0190a0b0-0000-7000-8000-000000000001', 'dead-lettered'),
  'idempotency-conflict': () =>
    new SagaIdempotencyConflictError('http-order', 'key-1', '0190a0b0-0000-7000-8000-00000000000a'),
  'create-conflict': () => new SagaCreateConflictError('http-order', 'key-2'),
  'too-large': () => new OutboxMessageTooLargeError(0, 'order.placed', 300_000, 262_144),
  'store-unavailable': () =>
    new SagaStoreUnavailableError('saga-1', 'accept', 'forward', 'BEGIN', new Error(SECRET)),
  'broker-unavailable': () => new BrokerUnavailableError('kafka', `connect failed: ${SECRET}`),
  'wait-timeout': () =>
    new SagaWaitTimeoutError('0190a0b0-0000-7000-8000-00000000000b', 'running', 50),
  // Not the client's doing: Nest's default answer.
  'unknown-saga': () => new UnknownSagaError('htp-order', ['http-order']),
  'message-invalid': () => new OutboxMessageInvalidError(0, 'destination', 'is required'),
  'options-invalid': () => new InvalidOptionsError('saga.leaseMs', 'must be a positive number'),
  'tx-required': () => new OutboxTransactionRequiredError(),
  'definition-invalid': () => new SagaDefinitionError('http-order', 'accept', SECRET),
  'lease-lost': () => new LeaseLostError('saga-1', 'worker-a'),
  'http-exception': () => new BadRequestException('your own 400'),
  'plain-error': () => new Error(SECRET),
};

@Controller('throw')
class ThrowingController {
  @Get(':what')
  throw(@Param('what') what: string): never {
    throw THROWN[what]!();
  }
}

/** Mapped: the status and the body each error is answered with. */
const MAPPED: [string, number, string, string, string | RegExp][] = [
  [
    'input-invalid',
    400,
    'Bad Request',
    'SAGA_INPUT_INVALID',
    'The input was rejected: customer is required.',
  ],
  [
    'not-serializable',
    400,
    'Bad Request',
    'NOT_JSON_SERIALIZABLE',
    'The input cannot be stored as JSON: at $.note, circular reference.',
  ],
  [
    'key-invalid',
    400,
    'Bad Request',
    'OPTIONS_INVALID',
    /^The idempotency key cannot be used: it must be 1 to 256 characters/,
  ],
  [
    'saga-not-found',
    404,
    'Not Found',
    'SAGA_NOT_FOUND',
    'No saga instance with id "0190a0b0-0000-7000-8000-000000000000" exists.',
  ],
  [
    'message-not-found',
    404,
    'Not Found',
    'OUTBOX_MESSAGE_NOT_FOUND',
    'No dead-lettered outbox message with id "0190a0b0-0000-7000-8000-000000000001".',
  ],
  [
    'idempotency-conflict',
    409,
    'Conflict',
    'SAGA_IDEMPOTENCY_CONFLICT',
    'This idempotency key was already used with a different input. Use a new key for a new request, or repeat the first request unchanged to get its result.',
  ],
  [
    'create-conflict',
    409,
    'Conflict',
    'SAGA_CREATE_CONFLICT',
    'A concurrent request with the same idempotency key did not complete; retry the request.',
  ],
  [
    'too-large',
    413,
    'Payload Too Large',
    'OUTBOX_MESSAGE_TOO_LARGE',
    'The request would produce a message of 300000 bytes, over the 262144-byte limit.',
  ],
  [
    'store-unavailable',
    503,
    'Service Unavailable',
    'SAGA_STORE_UNAVAILABLE',
    'The service is temporarily unavailable; retry the request later.',
  ],
  [
    'broker-unavailable',
    503,
    'Service Unavailable',
    'BROKER_UNAVAILABLE',
    'The service is temporarily unavailable; retry the request later.',
  ],
  [
    'wait-timeout',
    504,
    'Gateway Timeout',
    'SAGA_WAIT_TIMEOUT',
    'Saga 0190a0b0-0000-7000-8000-00000000000b had not finished when the wait ended (running); it keeps running.',
  ],
];

/** Unmapped: Nest's default body, as without the filter. */
const DEFAULT_500 = { statusCode: 500, message: 'Internal server error' };
const UNMAPPED = [
  'unknown-saga',
  'message-invalid',
  'options-invalid',
  'tx-required',
  'definition-invalid',
  'lease-lost',
  'plain-error',
];

async function serve(metadata: ModuleMetadata, setup?: (app: INestApplication) => void) {
  @Module(metadata)
  class AppModule {}
  const app = await NestFactory.create(AppModule, { logger: false, abortOnError: false });
  setup?.(app);
  await app.listen(0, '127.0.0.1');
  const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  return { app, url };
}

async function answer(
  url: string,
  init?: RequestInit,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, init);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('SageHttpExceptionFilter', () => {
  describe('registered with APP_FILTER, in front of SagaService on PostgreSQL', () => {
    let db: TestDatabase;
    let app: INestApplication;
    let url: string;
    const post = (body: unknown, key?: string) =>
      answer(`${url}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
    const sagaCount = async (): Promise<number> => {
      const [{ n }] = (await app
        .get(SageDatabase)
        .dataSource.query(`SELECT count(*)::int AS n FROM sage.saga_instance`)) as [{ n: number }];
      return n;
    };

    beforeAll(async () => {
      db = await createTestDatabase();
      const c = db.connection;
      const options: SagaOutboxModuleOptions = {
        postgres: {
          host: c.host,
          port: c.port,
          user: c.user,
          password: c.password,
          database: c.database,
          poolSize: 4,
        },
      };
      ({ app, url } = await serve({
        imports: [SagaOutboxModule.forRoot(options)],
        controllers: [OrdersController, ThrowingController],
        providers: [HttpOrderSaga, { provide: APP_FILTER, useClass: SageHttpExceptionFilter }],
      }));
    });
    afterAll(async () => {
      releaseHeld();
      await app?.close();
      await db?.drop();
    });

    it('202 for a valid order; the same key and body again: the same saga', async () => {
      const first = await post({ customer: 'ada', quantity: 1 }, 'order-1');
      expect(first).toEqual({ status: 202, body: { sagaId: expect.any(String), created: true } });
      const again = await post({ customer: 'ada', quantity: 1 }, 'order-1');
      expect(again).toEqual({ status: 202, body: { sagaId: first.body.sagaId, created: false } });
      const found = await answer(`${url}/orders/by-key/order-1`);
      expect(found.status).toBe(200);
      expect(found.body).toMatchObject({ id: first.body.sagaId, name: 'http-order' });
    });

    it('400 SAGA_INPUT_INVALID with the validator’s reason, and no input value; nothing written', async () => {
      const before = await sagaCount();
      const res = await post({ customer: 'grace.hopper@example.com', quantity: 0 });
      expect(res).toEqual({
        status: 400,
        body: {
          statusCode: 400,
          error: 'Bad Request',
          code: 'SAGA_INPUT_INVALID',
          message: 'The input was rejected: quantity must be a positive integer.',
        },
      });
      expect(await sagaCount()).toBe(before);
    });

    it('400 NOT_JSON_SERIALIZABLE for a body nested too deep or a string with NUL', async () => {
      const deep = '['.repeat(500) + ']'.repeat(500);
      const nested = await post(`{"customer":"bob","quantity":1,"note":${deep}}`);
      expect(nested.status).toBe(400);
      expect(nested.body).toMatchObject({ code: 'NOT_JSON_SERIALIZABLE', error: 'Bad Request' });
      expect(nested.body.message).toMatch(
        /^The input cannot be stored as JSON: at \$\.note(\[0\])+, nested deeper than 100 levels/,
      );
      const nul = await post({ customer: 'bob\u0000by', quantity: 1 });
      expect(nul.body).toEqual({
        statusCode: 400,
        error: 'Bad Request',
        code: 'NOT_JSON_SERIALIZABLE',
        message:
          'The input cannot be stored as JSON: at $.customer, the string contains the NUL character (\\u0000).',
      });
    });

    it('400 for an idempotency key that cannot be stored, without echoing it', async () => {
      const res = await post({ customer: 'bob', quantity: 1 }, 'k'.repeat(300));
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ code: 'OPTIONS_INVALID', error: 'Bad Request' });
      expect(res.body.message).not.toContain('kkkk');
    });

    it('409 SAGA_IDEMPOTENCY_CONFLICT for a key reused with another body, naming neither the saga nor the setting', async () => {
      const first = await post({ customer: 'carol', quantity: 1 }, 'order-2');
      expect(first.status).toBe(202);
      const other = await post({ customer: 'carol', quantity: 2 }, 'order-2');
      expect(other).toEqual({
        status: 409,
        body: {
          statusCode: 409,
          error: 'Conflict',
          code: 'SAGA_IDEMPOTENCY_CONFLICT',
          message:
            'This idempotency key was already used with a different input. Use a new key for a new request, or repeat the first request unchanged to get its result.',
        },
      });
      expect(JSON.stringify(other.body)).not.toContain(String(first.body.sagaId));
    });

    it('404 SAGA_NOT_FOUND for an unknown saga id; your own NotFoundException is untouched', async () => {
      const id = '0190a0b0-0000-7000-8000-0000000000ff';
      expect(await answer(`${url}/sagas/${id}`)).toEqual({
        status: 404,
        body: {
          statusCode: 404,
          error: 'Not Found',
          code: 'SAGA_NOT_FOUND',
          message: `No saga instance with id "${id}" exists.`,
        },
      });
      expect(await answer(`${url}/orders/by-key/nope`)).toEqual({
        status: 404,
        body: { statusCode: 404, error: 'Not Found', message: 'no order with key nope' },
      });
    });

    it('504 SAGA_WAIT_TIMEOUT when the saga is still running at the end of a wait', async () => {
      const started = await post({ customer: 'dan', quantity: 1, hold: true });
      expect(started.status).toBe(202);
      const sagaId = String(started.body.sagaId);
      expect(await answer(`${url}/sagas/${sagaId}/wait`)).toEqual({
        status: 504,
        body: {
          statusCode: 504,
          error: 'Gateway Timeout',
          code: 'SAGA_WAIT_TIMEOUT',
          message: `Saga ${sagaId} had not finished when the wait ended (running); it keeps running.`,
        },
      });
      releaseHeld();
      held = Promise.resolve();
      await app.get(SagaService).waitFor(sagaId);
    });

    it.each(MAPPED)('%s → %i %s %s', async (what, statusCode, error, code, message) => {
      const res = await answer(`${url}/throw/${what}`);
      expect(res.status).toBe(statusCode);
      expect(res.body).toEqual({ statusCode, error, code, message: expect.anything() });
      if (typeof message === 'string') expect(res.body.message).toBe(message);
      else expect(res.body.message).toMatch(message);
      expect(JSON.stringify(res.body)).not.toContain('payroll_admin');
    });

    it.each(UNMAPPED)('%s → Nest’s default 500, no details', async (what) => {
      expect(await answer(`${url}/throw/${what}`)).toEqual({ status: 500, body: DEFAULT_500 });
    });

    it('leaves HttpExceptions alone', async () => {
      expect(await answer(`${url}/throw/http-exception`)).toEqual({
        status: 400,
        body: { statusCode: 400, error: 'Bad Request', message: 'your own 400' },
      });
    });
  });

  describe.each([
    ['app.useGlobalFilters(new SageHttpExceptionFilter(app.getHttpAdapter()))', true],
    ['app.useGlobalFilters(new SageHttpExceptionFilter()), without the adapter', false],
  ])('registered with %s', (_label, withAdapter) => {
    let app: INestApplication;
    let url: string;
    beforeAll(async () => {
      ({ app, url } = await serve({ controllers: [ThrowingController] }, (created) =>
        created.useGlobalFilters(
          withAdapter
            ? new SageHttpExceptionFilter(created.getHttpAdapter())
            : new SageHttpExceptionFilter(),
        ),
      ));
    });
    afterAll(() => app?.close());

    it.each(MAPPED)('%s → %i', async (what, statusCode, error, code) => {
      expect(await answer(`${url}/throw/${what}`)).toEqual({
        status: statusCode,
        body: { statusCode, error, code, message: expect.any(String) },
      });
    });

    it('unmapped Sage errors and other errors: Nest’s default 500; HttpExceptions untouched', async () => {
      for (const what of UNMAPPED)
        expect(await answer(`${url}/throw/${what}`)).toEqual({ status: 500, body: DEFAULT_500 });
      expect((await answer(`${url}/throw/http-exception`)).status).toBe(400);
    });
  });
});
