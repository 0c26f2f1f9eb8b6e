import { SagaOutboxError } from '../../core/errors';

/**
 * A message with encrypted fields (header `sage-encrypted`, `dataProtection`) reached
 * `InboxService.handle()` through a `@nestjs/microservices` transport (Kafka, RabbitMQ, NATS),
 * which hands `@Payload()` to the handler as received, encrypted. Its reason is what the inbox
 * records when it dead-letters the message instead of running the handler.
 */
export class UndecryptedTransportMessageError extends SagaOutboxError {
  constructor(
    readonly consumer: string,
    readonly messageId: string,
  ) {
    super(
      'MESSAGE_NOT_DECRYPTED',
      `Message "${messageId}" for consumer "${consumer}" has encrypted fields (header sage-encrypted) and came through a @nestjs/microservices transport, which hands @Payload() to the handler still encrypted: it was dead-lettered, not handled. Consume its destination with SageBrokerTransport given \`protector: app.get(DATA_PROTECTOR)\` (it decrypts before the handler), or with @IdempotentHandler, then replay the dead letter.`,
    );
  }
}
