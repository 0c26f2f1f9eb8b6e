import { SagaOutboxError } from '../errors';
import { errorText } from '../error-text';

/**
 * A consumer's handler failed (or its transaction could not commit). The transaction was rolled
 * back, so none of its writes and no inbox row exist; the failure was counted and the message is
 * left for the broker to redeliver. The handler's error is the `cause`.
 */
export class InboxHandlerFailedError extends SagaOutboxError {
  constructor(
    readonly consumer: string,
    readonly messageId: string,
    /** Failed attempts counted so far; null when the failure could not be recorded. */
    readonly attempts: number | null,
    readonly maxAttempts: number,
    cause: unknown,
  ) {
    super(
      'INBOX_HANDLER_FAILED',
      `Consumer "${consumer}" failed to handle message "${messageId}" ` +
        `(${attempts === null ? 'attempt not recorded' : `attempt ${attempts} of ${maxAttempts}`}): ` +
        `${errorText(cause)}. Its transaction was rolled back; the message must be redelivered ` +
        `(it is dead-lettered after ${maxAttempts} failed attempts).`,
      { cause },
    );
  }
}

/**
 * A delivered message carries no usable message id. Without a stable id from the producer the inbox
 * cannot recognise a redelivery, so nothing was handled. Sage producers send the outbox row id as
 * CloudEvents `ce-id` (Kafka header), AMQP `message-id` and NATS `Nats-Msg-Id`.
 */
export class InboxMessageIdMissingError extends SagaOutboxError {
  constructor(
    readonly consumer: string,
    detail: string,
  ) {
    super(
      'INBOX_MESSAGE_ID_MISSING',
      `Consumer "${consumer}" received a message without a usable message id (${detail}). ` +
        'Producers must send a stable id (CloudEvents "ce-id" header, AMQP "message-id" property or ' +
        'NATS "Nats-Msg-Id" header; Sage\'s outbox does). Nothing was handled.',
    );
  }
}
