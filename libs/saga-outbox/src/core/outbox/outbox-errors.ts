import { SagaOutboxError } from '../errors';

/**
 * `publish()` was called with no EntityManager and outside any ambient transaction. Writing the
 * message on its own connection would break the outbox's promise (the message exists if and only if
 * the business transaction committed), so nothing was written.
 */
export class OutboxTransactionRequiredError extends SagaOutboxError {
  constructor(detail?: string) {
    super(
      'OUTBOX_TRANSACTION_REQUIRED',
      'outbox.publish() must run inside the business transaction: pass { manager } from ' +
        'dataSource.transaction(...) (or a step context), or call it inside a @Transactional() method. ' +
        `Nothing was written.${detail ? ` (${detail})` : ''}`,
    );
  }
}

/** A message failed validation at the boundary (missing destination/type, bad key or headers). Nothing was written. */
export class OutboxMessageInvalidError extends SagaOutboxError {
  constructor(
    readonly index: number,
    readonly field: string,
    problem: string,
  ) {
    super(
      'OUTBOX_MESSAGE_INVALID',
      `Outbox message #${index}: "${field}" ${problem}. Nothing was written.`,
    );
  }
}

/** A message is larger than the configured limit (payload + headers as JSON, in bytes). Nothing was written. */
export class OutboxMessageTooLargeError extends SagaOutboxError {
  constructor(
    readonly index: number,
    readonly type: string,
    readonly sizeBytes: number,
    readonly limitBytes: number,
  ) {
    super(
      'OUTBOX_MESSAGE_TOO_LARGE',
      `Outbox message #${index} of type "${type}" is ${sizeBytes} bytes as JSON, over the ${limitBytes}-byte limit. ` +
        'Send a reference (an id or a blob URL) instead of the data, or raise outbox.maxMessageBytes if your broker accepts it. Nothing was written.',
    );
  }
}

/** A dead-letter operation named a message that does not exist or is not dead-lettered. */
export class OutboxMessageNotFoundError extends SagaOutboxError {
  constructor(
    readonly messageId: string,
    expected: string,
  ) {
    super('OUTBOX_MESSAGE_NOT_FOUND', `No ${expected} outbox message with id "${messageId}".`);
  }
}

/** A broker could not take a message; carried as `cause` in relay logs and `last_error`. */
export class BrokerPublishError extends SagaOutboxError {
  constructor(
    readonly broker: string,
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super('BROKER_PUBLISH_FAILED', `Broker "${broker}": ${message}`, options);
  }
}

/**
 * The broker could not be reached (code `BROKER_UNAVAILABLE`): at startup with
 * `brokerStartup: 'wait'` once the attempts are spent, or when a subscription cannot be set up.
 * The message names the broker (never its credentials), what was tried and the cause.
 */
export class BrokerUnavailableError extends SagaOutboxError {
  constructor(
    readonly broker: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('BROKER_UNAVAILABLE', `Broker "${broker}" is unavailable: ${message}`, options);
  }
}
