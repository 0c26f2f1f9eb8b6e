import { STATUS_CODES } from 'node:http';
import {
  InvalidOptionsError,
  NotSerializableError,
  SagaCreateConflictError,
  SagaIdempotencyConflictError,
  SagaInputInvalidError,
  SagaNotFoundError,
  SagaWaitTimeoutError,
  type SagaOutboxError,
} from '../../core/errors';
import {
  OutboxMessageNotFoundError,
  OutboxMessageTooLargeError,
} from '../../core/outbox/outbox-errors';

/**
 * The body SageHttpExceptionFilter answers with: Nest's own error shape (`statusCode`, `error`,
 * `message`) plus the Sage error's stable `code`. The message is written for the API's client: no
 * saga input values, no database or broker error text, no server-side configuration advice.
 */
export interface SageHttpErrorBody {
  statusCode: number;
  /** The status's reason phrase: `Bad Request`, `Conflict`... */
  error: string;
  /** The Sage error's `code`, e.g. `SAGA_INPUT_INVALID`. */
  code: string;
  message: string;
}

/** Said for every 503: what failed is the server's business (it is logged), not the client's. */
const UNAVAILABLE = 'The service is temporarily unavailable; retry the request later.';

/**
 * Codes of the "a dependency is down" errors, answered 503. By code rather than class, so the
 * startup errors' module (SAGE_DATABASE_UNAVAILABLE) is not loaded for it.
 */
const UNAVAILABLE_CODES: ReadonlySet<string> = new Set([
  'SAGA_STORE_UNAVAILABLE',
  'SAGE_DATABASE_UNAVAILABLE',
  'BROKER_UNAVAILABLE',
]);

/**
 * The HTTP answer for a Sage error that says something about the request, or undefined for one
 * that is a bug or misconfiguration of the application (an unknown saga name, a message without a
 * destination, a transaction missing...): those are left to Nest's default handling (500, logged).
 *
 * | status | codes |
 * | --- | --- |
 * | 400 | SAGA_INPUT_INVALID, NOT_JSON_SERIALIZABLE, OPTIONS_INVALID for option `idempotencyKey` |
 * | 404 | SAGA_NOT_FOUND, OUTBOX_MESSAGE_NOT_FOUND |
 * | 409 | SAGA_IDEMPOTENCY_CONFLICT, SAGA_CREATE_CONFLICT |
 * | 413 | OUTBOX_MESSAGE_TOO_LARGE |
 * | 503 | SAGA_STORE_UNAVAILABLE, SAGE_DATABASE_UNAVAILABLE, BROKER_UNAVAILABLE |
 * | 504 | SAGA_WAIT_TIMEOUT |
 */
export function sageHttpErrorOf(error: SagaOutboxError): SageHttpErrorBody | undefined {
  const answer = clientAnswer(error);
  if (!answer) return undefined;
  const [statusCode, message] = answer;
  return { statusCode, error: STATUS_CODES[statusCode] ?? 'Error', code: error.code, message };
}

function clientAnswer(e: SagaOutboxError): [status: number, message: string] | undefined {
  // The validator's reason is the app's own text, returned as written: keep input values out of it.
  if (e instanceof SagaInputInvalidError) return [400, `The input was rejected: ${e.reason}.`];
  // Names the path (keys only) and the problem, never the value.
  if (e instanceof NotSerializableError)
    return [400, `The input cannot be stored as JSON: at ${e.path}, ${e.reason}.`];
  if (e instanceof InvalidOptionsError && e.option === 'idempotencyKey')
    return [
      400,
      'The idempotency key cannot be used: it must be 1 to 256 characters, without NUL characters or unpaired UTF-16 surrogates.',
    ];
  if (e instanceof SagaNotFoundError) return [404, e.message];
  if (e instanceof OutboxMessageNotFoundError) return [404, e.message];
  // Not the first saga's id nor the server-side switch the error message names: the key may be another client's.
  if (e instanceof SagaIdempotencyConflictError)
    return [
      409,
      'This idempotency key was already used with a different input. Use a new key for a new request, or repeat the first request unchanged to get its result.',
    ];
  if (e instanceof SagaCreateConflictError)
    return [
      409,
      'A concurrent request with the same idempotency key did not complete; retry the request.',
    ];
  if (e instanceof OutboxMessageTooLargeError)
    return [
      413,
      `The request would produce a message of ${e.sizeBytes} bytes, over the ${e.limitBytes}-byte limit.`,
    ];
  if (UNAVAILABLE_CODES.has(e.code)) return [503, UNAVAILABLE];
  if (e instanceof SagaWaitTimeoutError)
    return [
      504,
      `Saga ${e.sagaId} had not finished when the wait ended (${e.lastStatus}); it keeps running.`,
    ];
  return undefined;
}
