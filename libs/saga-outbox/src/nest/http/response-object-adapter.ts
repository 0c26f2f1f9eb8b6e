import type { HttpServer } from '@nestjs/common';
import { InvalidOptionsError } from '../../core/errors';

/** The parts of an Express response used here. */
interface ExpressResponse {
  headersSent: boolean;
  status(code: number): { json(body: unknown): unknown };
  json(body: unknown): unknown;
  end(message?: string): unknown;
}

/** The parts of a Fastify reply used here. */
interface FastifyReply {
  sent: boolean;
  code(code: number): { send(body: unknown): unknown };
  send(body: unknown): unknown;
  raw: { end(message?: string): unknown };
}

const isExpress = (r: unknown): r is ExpressResponse =>
  typeof (r as ExpressResponse | null)?.json === 'function' &&
  typeof (r as ExpressResponse).status === 'function';
const isFastify = (r: unknown): r is FastifyReply =>
  typeof (r as FastifyReply | null)?.code === 'function' &&
  typeof (r as FastifyReply).send === 'function';

function unsupported(): InvalidOptionsError {
  return new InvalidOptionsError(
    'SageHttpExceptionFilter',
    'cannot answer on this HTTP platform without its adapter: create it with ' +
      'new SageHttpExceptionFilter(app.getHttpAdapter()), or register it as ' +
      '{ provide: APP_FILTER, useClass: SageHttpExceptionFilter }',
  );
}

/**
 * The three HttpServer operations an exception filter uses (`isHeadersSent`, `reply`, `end`), done
 * on the platform's response object, the way Nest's Express and Fastify adapters do them: for a
 * SageHttpExceptionFilter created with `new` and no adapter. Any other response object throws
 * InvalidOptionsError saying how to pass the adapter.
 */
export const responseObjectAdapter = {
  isHeadersSent(response: unknown): boolean {
    if (isExpress(response)) return response.headersSent;
    if (isFastify(response)) return response.sent;
    throw unsupported();
  },
  reply(response: unknown, body: unknown, statusCode = 500): unknown {
    if (isExpress(response)) return response.status(statusCode).json(body);
    if (isFastify(response)) return response.code(statusCode).send(body);
    throw unsupported();
  },
  end(response: unknown, message?: string): unknown {
    if (isExpress(response)) return response.end(message);
    if (isFastify(response)) return response.raw.end(message);
    throw unsupported();
  },
  // Only these three are ever called on it (by SageHttpExceptionFilter and BaseExceptionFilter).
} as unknown as HttpServer;
