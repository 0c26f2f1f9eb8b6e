/**
 * SageHttpExceptionFilter outside what the HTTP integration test reaches: other contexts get Nest's
 * own default handling, a response already under way is ended rather than answered twice, only 5xx
 * are logged, and an unknown platform without an adapter gets an error saying how to pass one.
 */
import 'reflect-metadata';
import { Logger, type ArgumentsHost, type HttpServer } from '@nestjs/common';
import { lastValueFrom, type Observable } from 'rxjs';
import {
  InvalidOptionsError,
  SagaInputInvalidError,
  SagaStoreUnavailableError,
  UnknownSagaError,
} from '../../core/errors';
import { SageHttpExceptionFilter } from './sage-http-exception.filter';

const mockWsCalls: unknown[][] = [];
jest.mock(
  '@nestjs/websockets',
  () => ({
    BaseWsExceptionFilter: class {
      catch(exception: unknown, host: unknown): void {
        mockWsCalls.push([exception, host]);
      }
    },
  }),
  { virtual: true },
);

function hostOf(type: string, response: unknown = {}): ArgumentsHost {
  const args = [{}, response];
  return {
    getType: () => type,
    getArgs: () => args,
    getArgByIndex: (i: number) => args[i],
  } as unknown as ArgumentsHost;
}

/** An adapter recording what the filter asks of it. */
function recordingAdapter(headersSent = false) {
  const calls: unknown[][] = [];
  const adapter = {
    isHeadersSent: () => headersSent,
    reply: (_res: unknown, body: unknown, status: number) => calls.push(['reply', status, body]),
    end: () => calls.push(['end']),
  } as unknown as HttpServer;
  return { adapter, calls };
}

let logged: unknown[];
beforeEach(() => {
  logged = [];
  jest.spyOn(Logger.prototype, 'error').mockImplementation((message: unknown) => {
    logged.push(message);
  });
});
afterEach(() => jest.restoreAllMocks());

const invalid = () => new SagaInputInvalidError('order', 'quantity must be positive');
const storeDown = () =>
  new SagaStoreUnavailableError(
    's-1',
    'charge',
    'forward',
    'BEGIN',
    new Error('connect ECONNREFUSED'),
  );

describe('SageHttpExceptionFilter over HTTP', () => {
  it('answers a mapped error once, logging only 5xx (with the cause, which the body never carries)', () => {
    const { adapter, calls } = recordingAdapter();
    const filter = new SageHttpExceptionFilter(adapter);
    filter.catch(invalid(), hostOf('http'));
    expect(logged).toEqual([]);
    const down = storeDown();
    filter.catch(down, hostOf('http'));
    expect(logged).toEqual([down]);
    expect(calls).toEqual([
      [
        'reply',
        400,
        {
          statusCode: 400,
          error: 'Bad Request',
          code: 'SAGA_INPUT_INVALID',
          message: 'The input was rejected: quantity must be positive.',
        },
      ],
      [
        'reply',
        503,
        {
          statusCode: 503,
          error: 'Service Unavailable',
          code: 'SAGA_STORE_UNAVAILABLE',
          message: 'The service is temporarily unavailable; retry the request later.',
        },
      ],
    ]);
  });

  it('ends a response whose headers were already sent instead of answering again', () => {
    const { adapter, calls } = recordingAdapter(true);
    new SageHttpExceptionFilter(adapter).catch(invalid(), hostOf('http'));
    expect(calls).toEqual([['end']]);
  });

  it('without an adapter, on a response that is neither Express nor Fastify: says how to pass one', () => {
    const filter = new SageHttpExceptionFilter();
    expect(() => filter.catch(invalid(), hostOf('http', { write() {} }))).toThrow(
      new InvalidOptionsError(
        'SageHttpExceptionFilter',
        'cannot answer on this HTTP platform without its adapter: create it with ' +
          'new SageHttpExceptionFilter(app.getHttpAdapter()), or register it as ' +
          '{ provide: APP_FILTER, useClass: SageHttpExceptionFilter }',
      ),
    );
  });

  it('without an adapter, answers through a Fastify-style reply', () => {
    const sent: unknown[][] = [];
    const reply = {
      sent: false,
      code: (status: number) => ({ send: (body: unknown) => sent.push([status, body]) }),
      send: () => undefined,
      raw: { end: () => undefined },
    };
    new SageHttpExceptionFilter().catch(invalid(), hostOf('http', reply));
    expect(sent).toEqual([[400, expect.objectContaining({ code: 'SAGA_INPUT_INVALID' })]]);
  });
});

describe('SageHttpExceptionFilter outside HTTP: Nest’s default of the context', () => {
  it('rpc: the error observable Nest’s BaseRpcExceptionFilter returns, logged as it logs it', async () => {
    const error = invalid();
    const result = new SageHttpExceptionFilter().catch(error, hostOf('rpc')) as Observable<never>;
    await expect(lastValueFrom(result)).rejects.toEqual({
      status: 'error',
      message: 'Internal server error',
    });
    expect(logged).toEqual([error]);
  });

  it('ws: handed to @nestjs/websockets’ BaseWsExceptionFilter', () => {
    const error = new UnknownSagaError('x', []);
    const host = hostOf('ws');
    new SageHttpExceptionFilter().catch(error, host);
    expect(mockWsCalls).toEqual([[error, host]]);
  });

  it('graphql and other external contexts: logged and rethrown, as Nest’s default does', () => {
    const error = invalid();
    expect(() => new SageHttpExceptionFilter().catch(error, hostOf('graphql'))).toThrow(error);
    expect(logged).toEqual([error]);
  });
});
