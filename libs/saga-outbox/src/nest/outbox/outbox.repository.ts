import { Inject, Injectable, Optional } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { EntityManager } from 'typeorm';
import { withOptimisticSend, type OptimisticSender } from '../../core/outbox/optimistic-sender';
import type { OutboxMessageInput } from '../../core/outbox/outbox-message';
import { OutboxPublisher } from '../../core/outbox/outbox-publisher';
import { NO_TRACING, type SageTracer } from '../../core/ports/tracer';
import { PostgresOutboxStore } from '../../persistence/postgres/postgres-outbox-store';
import type { TypeOrmCommitHooks } from '../../persistence/postgres/typeorm-commit-hooks';
import { SAGE_TRACER } from '../sage-tracer.token';
import type { DataProtector } from '../../core/protection/data-protector';
import { DATA_PROTECTOR } from '../protection/data-protector.token';
import { SAGE_CONTRACTS, type SageContracts } from '../contracts/sage-contracts.token';
import { SAGA_OUTBOX_OPTIONS } from '../saga-outbox.module-definition';
import type { SagaOutboxModuleOptions } from '../saga-outbox.options';
import { ClsAmbientTransaction } from './cls-ambient-transaction';
import { OptimisticSendingProvider } from './optimistic-sending.provider';
import {
  OUTBOX_AMBIENT_TRANSACTION,
  OUTBOX_OPTIONS,
  type OutboxModuleOptions,
} from './outbox.options';

type AmbientTransaction = () => EntityManager | undefined;

/** What the write side needs of optimistic sending (OptimisticSendingProvider). */
interface OptimisticSending {
  readonly optimistic: OptimisticSender | undefined;
  readonly commitHooks: TypeOrmCommitHooks;
}

/**
 * The write side for application code: `outbox.publish(message | messages, { manager })` inside
 * the business transaction, or with no manager inside the ambient transaction: the one
 * OUTBOX_AMBIENT_TRANSACTION returns when provided, else the current `@nestjs-cls/transactional`
 * transaction (`@Transactional()`) when the app registered ClsModule with ClsPluginTransactional.
 * Outside any transaction: OutboxTransactionRequiredError.
 */
@Injectable()
export class OutboxRepository {
  /** The core publisher (saga steps' ctx.emit writes through it). */
  readonly publisher: OutboxPublisher<EntityManager>;

  constructor(
    store: PostgresOutboxStore,
    moduleRef: ModuleRef,
    @Optional() @Inject(OUTBOX_AMBIENT_TRANSACTION) ambient?: AmbientTransaction,
    @Optional() @Inject(OUTBOX_OPTIONS) options?: OutboxModuleOptions,
    @Optional() @Inject(OptimisticSendingProvider) sending?: OptimisticSending,
    @Optional() @Inject(SAGE_TRACER) tracer: SageTracer = NO_TRACING,
    @Optional()
    @Inject(SAGA_OUTBOX_OPTIONS)
    moduleOptions?: Pick<SagaOutboxModuleOptions, 'signing'>,
    @Optional() @Inject(DATA_PROTECTOR) protector?: DataProtector<EntityManager> | null,
    @Optional() @Inject(SAGE_CONTRACTS) contracts?: SageContracts | null,
  ) {
    // The explicit binding wins; otherwise the CLS transaction, looked up on first use.
    const cls = ambient ? undefined : new ClsAmbientTransaction(moduleRef);
    // With optimistic sending on, every write (publish(), saga steps' ctx.emit) registers its rows
    // for the after-commit hook of its transaction.
    const optimistic = sending?.optimistic;
    this.publisher = new OutboxPublisher<EntityManager>({
      // Traced outermost: the write span's traceparent is in the headers every layer below stores.
      writer: tracer.outboxWriter(
        optimistic ? withOptimisticSend(store, sending.commitHooks, optimistic) : store,
      ),
      ambientTransaction: ambient ?? (() => cls?.current()),
      maxMessageBytes: options?.maxMessageBytes,
      // Signed as written: the stored row carries its signature, so the relay holds no key.
      signingKeys: moduleOptions?.signing?.keys,
      // `dataProtection`: declared payload fields encrypted in the caller's transaction, before signing.
      protector: protector ?? undefined,
      // `contracts.publishes`: payloads validated (plaintext) before encryption, signing and the write.
      contracts: contracts?.outgoing,
    });
  }

  publish(
    messages: OutboxMessageInput | readonly OutboxMessageInput[],
    options: { manager?: EntityManager } = {},
  ): Promise<string[]> {
    return this.publisher.publish(messages, options);
  }
}
