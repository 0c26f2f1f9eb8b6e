import { errorText } from './error-text';

/**
 * Every error Sage throws on purpose is a SagaOutboxError. Each subclass is a failure a user can
 * act on; its message names the saga / step / option involved and says what to do.
 */
export class SagaOutboxError extends Error {
  /** Stable machine-readable code, e.g. `SAGA_UNKNOWN`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A saga definition is malformed (cycle, unknown dependency, duplicate step, missing compensation). */
export class SagaDefinitionError extends SagaOutboxError {
  constructor(
    readonly sagaName: string,
    readonly stepName: string | undefined,
    problem: string,
  ) {
    super(
      'SAGA_DEFINITION_INVALID',
      `Saga "${sagaName}"${stepName ? `, step "${stepName}"` : ''}: ${problem}`,
    );
  }
}

/** `start()` named a saga that no provider or builder registered. */
export class UnknownSagaError extends SagaOutboxError {
  constructor(
    readonly sagaName: string,
    known: readonly string[],
  ) {
    super(
      'SAGA_UNKNOWN',
      `No saga named "${sagaName}" is registered. Known sagas: ${known.length ? known.map((k) => `"${k}"`).join(', ') : '(none)'}. ` +
        'Declare it with @Saga() on a provider in a module that imports SagaOutboxModule, or register it with defineSaga().',
    );
  }
}

/** The saga's input validator rejected the input; nothing was written. */
export class SagaInputInvalidError extends SagaOutboxError {
  constructor(
    readonly sagaName: string,
    /** The validator's verdict (its message, or what it threw), as the app wrote it. */
    readonly reason: string,
    cause?: unknown,
  ) {
    super(
      'SAGA_INPUT_INVALID',
      `Input for saga "${sagaName}" was rejected by its validator: ${reason}. Nothing was written.`,
      {
        cause,
      },
    );
  }
}

/** A value that must be stored as JSON (saga input, step result) cannot round-trip through JSON. */
export class NotSerializableError extends SagaOutboxError {
  constructor(
    readonly what: string,
    readonly path: string,
    /** What is wrong at `path` (never the value itself). */
    readonly reason: string,
  ) {
    super(
      'NOT_JSON_SERIALIZABLE',
      `${what} is not JSON-serialisable at ${path}: ${reason}. Use plain objects, arrays, strings, finite numbers, booleans and null (convert dates to ISO strings).`,
    );
  }
}

/** Module or engine options are invalid. */
export class InvalidOptionsError extends SagaOutboxError {
  constructor(
    readonly option: string,
    problem: string,
  ) {
    super('OPTIONS_INVALID', `Invalid Sage option "${option}": ${problem}`);
  }
}

/**
 * A feature was asked for whose optional peer packages are not installed (a `kafka://` broker
 * without `kafkajs`, the embedded database without PGlite…). The message is one line naming the
 * packages to install.
 */
export class MissingPeerDependencyError extends SagaOutboxError {
  constructor(
    readonly feature: string,
    readonly packages: readonly string[],
    options?: { cause?: unknown },
  ) {
    super(
      'PEER_DEPENDENCY_MISSING',
      `${feature} needs ${packages.join(', ')}: npm install ${packages.join(' ')}`,
      options,
    );
  }
}

/** `get()` / `waitFor()` asked about a saga id that does not exist. */
export class SagaNotFoundError extends SagaOutboxError {
  constructor(readonly sagaId: string) {
    super('SAGA_NOT_FOUND', `No saga instance with id "${sagaId}" exists.`);
  }
}

/** `waitFor()` gave up before the saga reached a terminal status. The saga keeps running. */
export class SagaWaitTimeoutError extends SagaOutboxError {
  constructor(
    readonly sagaId: string,
    readonly lastStatus: string,
    timeoutMs: number,
  ) {
    super(
      'SAGA_WAIT_TIMEOUT',
      `Saga "${sagaId}" was still "${lastStatus}" after waiting ${timeoutMs} ms. It keeps running; wait again or inspect it with get().`,
    );
  }
}

/** A step attempt ran past its timeout (delivered to the step as an aborted AbortSignal). */
export class StepTimeoutError extends SagaOutboxError {
  constructor(
    readonly sagaName: string,
    readonly stepName: string,
    timeoutMs: number,
    detail?: string,
  ) {
    super(
      'STEP_TIMEOUT',
      `Step "${stepName}" of saga "${sagaName}" exceeded its timeout of ${timeoutMs} ms${detail ? ` (${detail})` : ''}.`,
    );
  }
}

/** The whole saga ran past its timeout. */
export class SagaTimeoutError extends SagaOutboxError {
  constructor(
    readonly sagaName: string,
    readonly sagaId: string,
  ) {
    super('SAGA_TIMEOUT', `Saga "${sagaName}" (${sagaId}) exceeded its saga-level timeout.`);
  }
}

/**
 * This process no longer owns the saga (its lease expired and another worker claimed it). The
 * step's transaction was rolled back; the new owner continues the saga.
 */
export class LeaseLostError extends SagaOutboxError {
  constructor(
    readonly sagaId: string,
    readonly owner: string,
  ) {
    super(
      'SAGA_LEASE_LOST',
      `Worker "${owner}" lost the lease on saga "${sagaId}"; another worker continues it.`,
    );
  }
}

/**
 * The saga store's own bookkeeping around a step failed (connecting, BEGIN, the step lock,
 * recording the step done, COMMIT): the connection was lost, or the database is restarting or
 * refusing connections. It is not a failure of the step, so no attempt is counted: the worker stops
 * driving the saga and, once its lease runs out, recovery (on this or another worker) resumes it
 * from the stored state. Failing at COMMIT leaves it unknown whether the step committed; resuming is
 * safe either way, because a completed step is never run again. If it persists, check the database
 * and the connection pool.
 */
export class SagaStoreUnavailableError extends SagaOutboxError {
  constructor(
    readonly sagaId: string,
    readonly stepName: string,
    readonly phase: 'forward' | 'compensate',
    /** What the store was doing: `BEGIN`, `the step lock`, `recording the step`, `COMMIT`. */
    readonly operation: string,
    cause: unknown,
  ) {
    super(
      'SAGA_STORE_UNAVAILABLE',
      `Saga "${sagaId}", step "${stepName}" (${phase === 'forward' ? 'forward' : 'compensation'}): ` +
        `the saga store failed at ${operation}: ${errorText(cause)}. ` +
        'The step is not counted as failed; the saga is resumed by recovery once its lease expires. ' +
        'If this persists, check the database and the connection pool.',
      { cause },
    );
  }
}

/**
 * A saga was started, or a reply applied, with an EntityManager that is not inside a transaction
 * (code `SAGA_TX_INACTIVE`): pass the manager `dataSource.transaction(...)` gives, or none.
 */
export class SagaTransactionInactiveError extends SagaOutboxError {
  constructor(message: string) {
    super('SAGA_TX_INACTIVE', message);
  }
}

/**
 * Starting a saga with an idempotency key kept conflicting with a row that then disappeared
 * (code `SAGA_CREATE_CONFLICT`): a concurrent start rolled back; retrying the start is safe.
 */
export class SagaCreateConflictError extends SagaOutboxError {
  constructor(
    readonly sagaName: string,
    readonly idempotencyKey: string,
  ) {
    super(
      'SAGA_CREATE_CONFLICT',
      `Saga "${sagaName}" with idempotency key "${idempotencyKey}" kept conflicting with a row that then disappeared; retry the start.`,
    );
  }
}

/**
 * `start()` reused an idempotency key with a different input than the saga it started first (code
 * `SAGA_IDEMPOTENCY_CONFLICT`): the key names one request, and this is another. Nothing was
 * written; the first saga is `existingSagaId`. Use a new key for a new request, or pass the same
 * input to get the first saga back (`created: false`). The engine option
 * `idempotencyConflict: 'return-existing'` returns the first saga whatever the input.
 */
export class SagaIdempotencyConflictError extends SagaOutboxError {
  constructor(
    readonly sagaName: string,
    readonly idempotencyKey: string,
    readonly existingSagaId: string,
  ) {
    super(
      'SAGA_IDEMPOTENCY_CONFLICT',
      `Saga "${sagaName}" was already started with idempotency key "${idempotencyKey}" ` +
        `(saga ${existingSagaId}) but with a different input; nothing was written. ` +
        'Use a new idempotency key for a new request, or pass the same input to get the existing saga back ' +
        "(or set the saga engine option idempotencyConflict: 'return-existing', in SagaOutboxModule " +
        '`saga: { idempotencyConflict }`, to return it whatever the input).',
    );
  }
}

/**
 * The store has no such step for the saga (code `SAGA_STEP_UNKNOWN`): the saga does not exist,
 * or the definition version it started on has no such step.
 */
export class SagaStepUnknownError extends SagaOutboxError {
  constructor(
    readonly sagaId: string,
    readonly stepName: string,
  ) {
    super(
      'SAGA_STEP_UNKNOWN',
      `Saga "${sagaId}" has no step "${stepName}": the saga does not exist, or the definition version it was started with has no such step.`,
    );
  }
}

/**
 * A remote step's action did not return a valid command (code `SAGA_COMMAND_INVALID`): it must
 * return `{ destination, type, payload }` with non-empty names.
 */
export class SagaCommandInvalidError extends SagaOutboxError {
  constructor(message: string) {
    super('SAGA_COMMAND_INVALID', message);
  }
}

/**
 * Thrown by a broker handler when a delivery failed for a reason that is not the message's (the
 * inbox store is unreachable, so the attempt could not even be counted): the adapter redelivers it
 * after its back-off but does not count the attempt toward `maxDeliveries`, so an outage of the
 * database never dead-letters good messages. The original error is the `cause`.
 */
export class DeliveryDeferredError extends SagaOutboxError {
  constructor(reason: string, cause: unknown) {
    super('DELIVERY_DEFERRED', `Delivery deferred, to be retried: ${reason}`, { cause });
  }
}
