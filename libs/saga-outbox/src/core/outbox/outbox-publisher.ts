import type { KeyProvider } from '../ports/key-provider';
import type { OutboxWriter } from '../ports/outbox-store';
import { signMessage } from '../signing/message-signature';
import { OutboxTransactionRequiredError } from './outbox-errors';
import {
  prepareOutboxMessages,
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
    const prepared = prepareOutboxMessages(list, this.options).map((m) =>
      keys ? signMessage(m, keys) : m,
    );
    const tx = options.manager ?? this.options.ambientTransaction?.();
    if (tx === undefined || tx === null) throw new OutboxTransactionRequiredError();
    if (!this.options.writer.isTransaction(tx)) {
      throw new OutboxTransactionRequiredError(
        'the given manager is not inside an active transaction',
      );
    }
    await this.options.writer.insert(tx, prepared);
    return prepared.map((m) => m.id);
  }
}
