import type { ContractRegistry } from '../contracts/contract-registry';
import type { KeyProvider } from '../ports/key-provider';
import type { OutboxWriter } from '../ports/outbox-store';
import { signMessage } from '../signing/message-signature';
import type { DataProtector } from '../protection/data-protector';
import { OutboxMessageTooLargeError, OutboxTransactionRequiredError } from './outbox-errors';
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  outboxMessageBytes,
  prepareOutboxMessages,
  type NewOutboxMessage,
  type OutboxMessageInput,
  type OutboxValidationOptions,
} from './outbox-message';

export interface OutboxPublishOptions<Tx> {
  /** The business transaction to write in (a TypeORM EntityManager from `dataSource.transaction`). */
  manager?: Tx;
}

export interface OutboxPublisherOptions<Tx> extends OutboxValidationOptions {
  writer: OutboxWriter<Tx>;
  /**
   * The ambient transaction, if any (e.g. `@nestjs-cls/transactional`'s current EntityManager);
   * used when `publish()` gets no `manager`. Returns undefined outside a transaction.
   */
  ambientTransaction?: () => Tx | undefined;
  /**
   * Signs every message as it is written (`sage-signature` / `sage-signature-key` headers, see
   * core/signing/message-signature): the stored row is already signed, so the relay needs no key.
   */
  signingKeys?: KeyProvider;
  /**
   * Encrypts the payload fields `dataProtection.messages` declares for each message's type, in the
   * caller's transaction (a new data-subject key commits with the message), after validation and
   * before signing (the signature covers the ciphertext). The size limit is checked again on the
   * encrypted message.
   */
  protector?: DataProtector<Tx>;
  /**
   * The contracts of what this service writes (`contracts.publishes`): every message of a batch
   * whose type has one is checked against it after validation and before encryption (the schema
   * describes the plaintext), and gets the `ce-dataschema` header naming its version. One invalid
   * message throws ContractViolationError and nothing of the batch is written.
   */
  contracts?: Pick<ContractRegistry, 'checkOutgoing'>;
}

/**
 * The outbox write path: validates every message (all or nothing, before any write), then inserts
 * them in the caller's transaction. It never opens, commits or rolls back a transaction itself, so
 * the messages exist if and only if the caller's transaction commits.
 */
export class OutboxPublisher<Tx> {
  constructor(private readonly options: OutboxPublisherOptions<Tx>) {}

  /** Writes one message or several (kept in the given order); resolves to their ids. */
  async publish(
    messages: OutboxMessageInput | readonly OutboxMessageInput[],
    options: OutboxPublishOptions<Tx> = {},
  ): Promise<string[]> {
    const list = Array.isArray(messages)
      ? (messages as readonly OutboxMessageInput[])
      : [messages as OutboxMessageInput];
    const keys = this.options.signingKeys;
    const valid = this.checked(prepareOutboxMessages(list, this.options));
    const tx = options.manager ?? this.options.ambientTransaction?.();
    if (tx === undefined || tx === null) throw new OutboxTransactionRequiredError();
    if (!this.options.writer.isTransaction(tx)) {
      throw new OutboxTransactionRequiredError(
        'the given manager is not inside an active transaction',
      );
    }
    const sealed = await this.sealed(valid, tx);
    const prepared = keys ? sealed.map((m) => signMessage(m, keys)) : sealed;
    await this.options.writer.insert(tx, prepared);
    return prepared.map((m) => m.id);
  }

  /**
   * `messages` checked against their contracts (all before any write), each with its
   * `ce-dataschema` header set; refused if the header makes one too large.
   */
  private checked(messages: NewOutboxMessage[]): NewOutboxMessage[] {
    const contracts = this.options.contracts;
    if (!contracts) return messages;
    const limit = this.options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    return messages.map((message, index) => {
      const headers = contracts.checkOutgoing(message, index);
      if (sameHeaders(headers, message.headers)) return message;
      const size = outboxMessageBytes(message.payload, headers);
      if (size > limit) throw new OutboxMessageTooLargeError(index, message.type, size, limit);
      return { ...message, headers };
    });
  }

  /** `messages` with their declared fields encrypted (all before any write); refused if now too large. */
  private async sealed(messages: NewOutboxMessage[], tx: Tx): Promise<NewOutboxMessage[]> {
    const protector = this.options.protector;
    if (!protector) return messages;
    const limit = this.options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    const out: NewOutboxMessage[] = [];
    for (const [index, message] of messages.entries()) {
      const sealed = await protector.sealMessage(message, tx);
      if (sealed !== message) {
        // Encryption grows a value by about a third (base64) plus the envelope.
        const size = outboxMessageBytes(sealed.payload, sealed.headers);
        if (size > limit) throw new OutboxMessageTooLargeError(index, message.type, size, limit);
      }
      out.push(sealed);
    }
    return out;
  }
}

function sameHeaders(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => b[k] === a[k]);
}
