/**
 * `@sage/saga-outbox`: durable sagas, the transactional outbox and the consumer inbox for NestJS on
 * PostgreSQL — the module, decorators, services, errors, the engine, the Postgres stores and the
 * ports. This entry point loads no optional peer (broker clients, PGlite, prom-client, pino,
 * terminus, OpenTelemetry, `@nestjs/microservices`): those sit behind the subpath entry points
 * (`/kafka`, `/rabbitmq`, `/nats`, `/microservices`, `/embedded`, `/metrics`, `/health`, `/logging`,
 * `/tracing`, `/testing`, `/migrations`); entry-points.spec.ts enforces it.
 *
 * @packageDocumentation
 */

// Errors
export {
  SagaOutboxError,
  SagaDefinitionError,
  UnknownSagaError,
  SagaInputInvalidError,
  NotSerializableError,
  InvalidOptionsError,
  SagaNotFoundError,
  SagaWaitTimeoutError,
  StepTimeoutError,
  SagaTimeoutError,
  LeaseLostError,
  SagaStoreUnavailableError,
  SagaTransactionInactiveError,
  SagaCreateConflictError,
  SagaIdempotencyConflictError,
  SagaStepUnknownError,
  SagaCommandInvalidError,
  DeliveryDeferredError,
} from './core/errors';
export {
  OutboxTransactionRequiredError,
  OutboxMessageInvalidError,
  OutboxMessageTooLargeError,
  OutboxMessageNotFoundError,
  BrokerPublishError,
  BrokerUnavailableError,
} from './core/outbox/outbox-errors';
export { MissingPeerDependencyError } from './core/errors';
export {
  EMBEDDED_IN_PRODUCTION_ENV,
  EmbeddedDatabaseInProductionError,
} from './persistence/postgres/embedded-postgres-guard';
export { SageDatabaseUnavailableError, SageSchemaError } from './core/startup/startup-errors';
export type { DatabaseConnectFailure, SageSchemaProblem } from './core/startup/startup-errors';
export type { JsonValue } from './core/json';
export { MAX_JSON_DEPTH } from './core/json';
export { uuidv7 } from './core/uuid';
export type { Clock } from './core/ports/clock';

// Saga definitions
export { defineSaga, SagaBuilder } from './core/saga/saga-builder';
export { buildSagaDefinition } from './core/saga/saga-definition';
export type {
  SagaDefinition,
  StepDefinition,
  SagaOptions,
  StepOptions,
  FailureStrategy,
  StepContext,
  CompensationContext,
  SagaMessage,
  SagaSpec,
  StepSpec,
  StepBody,
  CompensationBody,
} from './core/saga/saga-definition';
export type { RetryPolicy, RetryPolicyInput } from './core/saga/retry-policy';
export type { SagaEvent, SagaEventListener } from './core/saga/saga-events';
export type {
  SagaRecord,
  StepRecord,
  SagaStatus,
  StepStatus,
  StepPhase,
  SagaStore,
  NewSaga,
  SagaCreateOutcome,
  FirstStepInStart,
  FirstStepStartOutcome,
  Fence,
  SagaVersionRef,
  ActiveVersionCount,
  StepTxOutcome,
  StepTxOptions,
  AwaitReply,
  AppliedReply,
  ParkOutcome,
  WithinTransaction,
} from './core/ports/saga-store';
export { StepFailure } from './core/ports/saga-store';
export { STEP_TRANSITIONS, STEP_STATUSES, stepStateDiagram } from './core/saga/step-transitions';
export { SAGA_TRANSITIONS, sagaStateDiagram } from './core/saga/saga-transitions';
export {
  OPERATOR_SAGA_TRANSITIONS,
  planSagaAction,
  planSagaCompensation,
  planSagaRetry,
  SagaActionRefusedError,
  type CompensationDefinition,
  type SagaOperatorAction,
  type SagaOperatorActionStore,
  type SagaOperatorPlan,
  type SagaSeen,
} from './core/saga/saga-operator-actions';
export type { SagaLifecycleEventsOptions } from './core/saga/saga-lifecycle-events';
export type { LoopStats } from './core/loop';
export { SagaEngine } from './core/saga/saga-engine';
export type {
  SagaEngineOptions,
  RegisterOptions,
  StartOptions,
  StartResult,
  WaitOptions,
  VersionMismatch,
} from './core/saga/saga-engine';
export type { IdempotencyConflictPolicy } from './core/saga/input-fingerprint';

// Outbox
export { OutboxPublisher } from './core/outbox/outbox-publisher';
export type { OutboxPublishOptions, OutboxPublisherOptions } from './core/outbox/outbox-publisher';
export { OutboxRelay } from './core/outbox/outbox-relay';
// WAL-streaming relay (outbox.relay.mode 'wal'; docs/outbox.md#wal-streaming-relay)
export { WalOutboxRelay, formatLsn } from './core/outbox/wal-outbox-relay';
export type { WalOutboxRelayOptions, WalOutboxRelayStats } from './core/outbox/wal-outbox-relay';
export { WalDeliveryWindow } from './core/outbox/wal-delivery-window';
export type { WalOutboxTransaction } from './core/outbox/wal-delivery-window';
export type {
  WalFencedResult,
  WalOutboxSession,
  WalOutboxSource,
  WalOutboxStreamHandlers,
  WalSlotLag,
} from './core/ports/wal-outbox-source';
export {
  WalLevelNotLogicalError,
  WalPublicationMissingError,
  WalRelayUnsupportedError,
  WalSlotUnusableError,
} from './core/outbox/wal-relay-errors';
export {
  PostgresWalSource,
  replicationConnectionOf,
} from './persistence/postgres/postgres-wal-source';
export type {
  PostgresReplicationConnection,
  PostgresWalSourceOptions,
} from './persistence/postgres/postgres-wal-source';
export type { OutboxRelayMode, WalRelayModuleOptions } from './nest/outbox/wal-relay.options';
export type {
  OutboxRelayOptions,
  OutboxBatchReport,
  OutboxRelayStats,
} from './core/outbox/outbox-relay';
export type {
  OutboxEvent,
  OutboxEventListener,
  OutboxPublishPath,
  OutboxFailureReason,
} from './core/outbox/outbox-events';
export { OptimisticSender, withOptimisticSend } from './core/outbox/optimistic-sender';
export type {
  OptimisticSenderOptions,
  OptimisticSenderSettings,
  OptimisticSenderStats,
  OptimisticRollout,
} from './core/outbox/optimistic-sender';
export { OutboxDeadLetters } from './core/outbox/outbox-dead-letters';
export { OutboxRetention, DEFAULT_OUTBOX_ARCHIVE_KEEP_MS } from './core/outbox/outbox-retention';
export type {
  OutboxRetentionOptions,
  OutboxArchiveOptions,
  RetentionRun,
} from './core/outbox/outbox-retention';
export {
  OUTBOX_TRANSITIONS,
  OUTBOX_STATUSES,
  outboxStateDiagram,
} from './core/outbox/outbox-transitions';
export type { OutboxStatus } from './core/outbox/outbox-transitions';
export { DEFAULT_OUTBOX_RETRY } from './core/outbox/outbox-retry';
export type { OutboxRetryPolicy } from './core/outbox/outbox-retry';
export { DEFAULT_MAX_MESSAGE_BYTES } from './core/outbox/outbox-message';
export type {
  OutboxMessageInput,
  OutboxMessage,
  ClaimedOutboxMessage,
  NewOutboxMessage,
  OutboxValidationOptions,
} from './core/outbox/outbox-message';

export type {
  OutboxStore,
  OutboxWriter,
  OutboxStats,
  OutboxFailure,
  ClaimByIdsResult,
  DeadLetterFilter,
  DeadLetterPage,
  TransactionCommitHooks,
  OutboxWakeSubscription,
} from './core/ports/outbox-store';

// Brokers
export type {
  Broker,
  BrokerMessage,
  BrokerHealth,
  PublishResult,
  DeliveredMessage,
  SubscribeOptions,
  DeliveryBatchHandler,
  Subscription,
  DeadLetterReason,
  DeadLetteredMessage,
} from './core/ports/broker';
export { MAX_MESSAGE_ID_LENGTH, messageIdProblem } from './core/message-id';
export { InMemoryBroker } from './brokers/memory/in-memory-broker';
export type { InMemoryBrokerOptions } from './brokers/memory/in-memory-broker';

// Persistence
export { PostgresOutboxStore } from './persistence/postgres/postgres-outbox-store';
export type { PostgresOutboxStoreOptions } from './persistence/postgres/postgres-outbox-store';
export { TypeOrmCommitHooks } from './persistence/postgres/typeorm-commit-hooks';
export { sagaOutboxMigrations, outboxWalPublicationMigration } from './migrations';
export type { SagaOutboxMigrationClass, SagaOutboxMigrationOptions } from './migrations';
export { PostgresSagaStore } from './persistence/postgres/postgres-saga-store';
export {
  PostgresSagaOperatorActions,
  type PostgresSagaOperatorActionsOptions,
} from './persistence/postgres/postgres-saga-operator-actions';
export type { PostgresSagaStoreOptions } from './persistence/postgres/postgres-saga-store';
export { PostgresSubjectKeyStore } from './persistence/postgres/postgres-subject-key-store';
export type { PostgresSubjectKeyStoreOptions } from './persistence/postgres/postgres-subject-key-store';
export { createSagaDataSource, runMigrationsLocked } from './persistence/postgres/data-source';
export { pendingSageMigrations } from './persistence/postgres/sage-schema-status';
export type { PendingSageMigrationsOptions } from './persistence/postgres/sage-schema-status';
export type { SagaDataSourceOptions } from './persistence/postgres/data-source';
export type { PostgresSslOptions, PostgresPassword } from './persistence/postgres/postgres-ssl';
export {
  PostgresOperatorQueries,
  SAGA_STATUSES,
  DEFAULT_STALLED_AFTER_SECONDS,
} from './persistence/postgres/postgres-operator-queries';
export type {
  PostgresOperatorQueriesOptions,
  LiveSagaGroup,
  SagaSummary,
  OutboxPendingBreakdown,
  OutboxDeadLetterGroup,
  InboxDeadLetterGroup,
  OldestTransaction,
} from './persistence/postgres/postgres-operator-queries';

// Nest
export { SagaOutboxModule } from './nest/saga-outbox.module';
export { SAGA_OUTBOX_OPTIONS } from './nest/saga-outbox.module-definition';
export type {
  SagaOutboxModuleOptions,
  BrokerStartupPolicy,
  SagaOutboxPostgresOptions,
  SagaOutboxEmbeddedOptions,
  SagaEngineTuning,
} from './nest/saga-outbox.options';
export { Saga, SagaStep, Compensate } from './nest/decorators';
export type { SagaStepContext, SagaCompensationContext } from './nest/saga-context';
export { SagaService } from './nest/saga.service';
export type { SagaClass, SagaInputOf } from './nest/saga-input-of';
export type { SagaReference } from './nest/saga-reference';
export { SagaClassInvalidError } from './nest/saga-class-invalid.error';
export { SageHttpExceptionFilter } from './nest/http/sage-http-exception.filter';
export { sageHttpErrorOf } from './nest/http/sage-http-errors';
export type { SageHttpErrorBody } from './nest/http/sage-http-errors';

// Remote (command/reply) steps
export {
  SAGA_HEADERS,
  SAGA_REPLY_TYPE,
  SagaMessageInvalidError,
  parseSagaCommand,
  parseSagaReply,
  sagaReplyMessage,
} from './core/saga/saga-command';
export type {
  SagaCommand,
  SagaReply,
  SagaReplyOutcome,
  ReceivedSagaCommand,
} from './core/saga/saga-command';
export { DEFAULT_REMOTE_STEP_TIMEOUT_MS } from './core/saga/saga-definition';
export type { StepKind } from './core/saga/saga-definition';
export type { ReplyToAllowList } from './core/remote/participant-protocol';

// Message signing and refused messages
export { MessageRefusedError } from './core/inbox/message-refused';
export type { MessageRefusalReason } from './core/inbox/message-refused';
export type { KeyProvider } from './core/ports/key-provider';
export {
  MIN_SIGNING_KEY_BYTES,
  signingKeys,
  signingKeysFromEnv,
} from './core/signing/signing-keys';
export {
  SIGNATURE_HEADER,
  SIGNATURE_KEY_HEADER,
  signMessage,
  verifyMessageSignature,
} from './core/signing/message-signature';
export type { SignableMessage } from './core/signing/message-signature';
export type { MessageSigningOptions } from './core/signing/signing-options';

// Data protection (`dataProtection` option): envelope encryption, data-subject keys
export {
  ENCRYPTION_KEY_BYTES,
  encryptionKeys,
  encryptionKeysFromEnv,
} from './core/protection/encryption-keys';
export type {
  DataProtectionOptions,
  MessageDataProtection,
  SagaDataProtection,
  SubjectSelector,
} from './core/protection/data-protection-options';
export {
  DataSubjectMissingError,
  DataUnreadableError,
  SubjectKeyStoreUnavailableError,
} from './core/protection/protection-errors';
export type { UnreadableReason } from './core/protection/protection-errors';
export type { StoredSubjectKey, SubjectKeyStore } from './core/ports/subject-key-store';
export { ENCRYPTED_HEADER } from './core/protection/data-protector';
/** The sealing / opening object (`OutboxPublisher`'s `protector`); build it with createDataProtection. */
export type { DataProtector, ProtectableMessage } from './core/protection/data-protector';
/** The module's DataProtector (null without `dataProtection`), e.g. for SageBrokerTransport's `protector`. */
export { DATA_PROTECTOR } from './nest/protection/data-protector.token';
/** `dataProtection` without the Nest module: a protector and a saga-store wrapper from the same options. */
export { createDataProtection } from './core/protection/data-protection';
export type { DataProtection } from './core/protection/data-protection';
export { isSealedValue } from './core/protection/sealed-value';
export type { SealedValue } from './core/protection/sealed-value';
// Key rotation and data-subject requests (docs/data-protection-keys.md)
export { KeyRotation, DEFAULT_ROTATION_BATCH_SIZE } from './core/protection/key-rotation';
export type {
  KeyRotationOptions,
  KeyRotationReport,
  RotationSourceReport,
} from './core/protection/key-rotation';
export { DataSubjects, subjectAuditId } from './core/protection/data-subjects';
export type {
  DataSubjectExport,
  SubjectErasure,
  SubjectErasurePreview,
} from './core/protection/data-subjects';
export {
  SubjectHasRunningSagasError,
  SubjectKeysNotConfiguredError,
} from './core/protection/data-subject-errors';
export { PROTECTED_SOURCES } from './core/ports/protected-data-store';
export type {
  EnvelopeFilter,
  ProtectedDataStore,
  ProtectedMessageFields,
  ProtectedRow,
  ProtectedSource,
  ProtectionAuditEntry,
  StoredSagaSnapshot,
} from './core/ports/protected-data-store';
export { PostgresProtectedDataStore } from './persistence/postgres/postgres-protected-data-store';
export type { PostgresProtectedDataStoreOptions } from './persistence/postgres/postgres-protected-data-store';
export { SageDataSubjects } from './nest/protection/sage-data-subjects';
export { SagaCommandHandler, rejectCommand } from './nest/remote/saga-command-handler.decorator';
export type {
  SagaCommandHandlerOptions,
  SagaCommandRejection,
} from './nest/remote/saga-command-handler.decorator';
export { SagaReplyConsumer, DEFAULT_SAGA_REPLY_CONSUMER } from './nest/remote/saga-reply.consumer';
export { SageDatabase } from './nest/sage-database';
export {
  OutboxRepository,
  OutboxRelayService,
  OutboxRelayProvider,
  OutboxRetentionProvider,
  OptimisticSendingProvider,
  OutboxDeadLettersService,
  OUTBOX_BROKER,
  OUTBOX_OPTIONS,
  OUTBOX_AMBIENT_TRANSACTION,
} from './nest/outbox/outbox.providers';
export type { OutboxModuleOptions } from './nest/outbox/outbox.providers';
export { OutboxRelayModule } from './nest/relay/outbox-relay.module';
export { OUTBOX_RELAY_MODULE_OPTIONS } from './nest/relay/outbox-relay.module-definition';
export type { OutboxRelayModuleOptions } from './nest/relay/outbox-relay.options';
export { brokerFromUrl } from './nest/relay/broker-url';
export type { BrokerUrlSecurity } from './nest/relay/broker-url';

// Inbox
export {
  InboxProcessor,
  DEFAULT_INBOX_MAX_ATTEMPTS,
  DEFAULT_INBOX_BATCH_SIZE,
  MAX_INBOX_BATCH_SIZE,
} from './core/inbox/inbox-processor';
export { InboxRetention, DEFAULT_INBOX_RETENTION_MS } from './core/inbox/inbox-retention';
export type { InboxRetentionOptions } from './core/inbox/inbox-retention';
export type { RetentionTuning } from './core/retention-loop';
// Saga retention
export { SagaRetention, DEFAULT_SAGA_RETENTION_MS } from './core/saga/saga-retention';
export type { SagaRetentionOptions } from './core/saga/saga-retention';
export type { SagaRetentionStore } from './core/ports/saga-retention-store';
export { PostgresSagaRetentionStore } from './persistence/postgres/postgres-saga-retention-store';
export type { PostgresSagaRetentionStoreOptions } from './persistence/postgres/postgres-saga-retention-store';
export { SagaRetentionProvider } from './nest/saga-retention.provider';
export type { SagaRetentionModuleOptions } from './nest/retention-options';
// Audit log (docs/audit-log.md)
export { PostgresAuditLog, recordAudit } from './persistence/postgres/postgres-audit-log';
export type {
  AuditRecord,
  AuditVerification,
  PostgresAuditLogOptions,
} from './persistence/postgres/postgres-audit-log';
export { AuditSealer } from './core/audit/audit-sealer';
export type { AuditSealStore, AuditSealerOptions } from './core/audit/audit-sealer';
export { AuditSealerProvider } from './nest/audit/audit-sealer.provider';
export type { AuditModuleOptions } from './nest/audit/audit.options';
export type {
  InboxProcessorOptions,
  InboxDelivery,
  InboxHandler,
  InboxHandlerContext,
  InboxResult,
  InboxProcessorStats,
  InboxBatchDelivery,
  InboxBatchResult,
} from './core/inbox/inbox-processor';
export type { InboxEvent, InboxEventType, InboxEventListener } from './core/inbox/inbox-events';
export { InboxHandlerFailedError, InboxMessageIdMissingError } from './core/inbox/inbox-errors';
export type {
  InboxStore,
  InboxKey,
  InboxEntry,
  InboxStatus,
  InboxFailureRecord,
  InboxDeadLetterPage,
  InboxFailure,
  InboxFailureOutcome,
} from './core/ports/inbox-store';
export { PostgresInboxStore } from './persistence/postgres/postgres-inbox-store';
export type { PostgresInboxStoreOptions } from './persistence/postgres/postgres-inbox-store';
export { IdempotentHandler } from './nest/inbox/idempotent-handler.decorator';
export type {
  IdempotentHandlerOptions,
  InboxContext,
} from './nest/inbox/idempotent-handler.decorator';
export { IdempotentHandlerExplorer } from './nest/inbox/idempotent-handler.explorer';
export { InboxService } from './nest/inbox/inbox.service';
export type { InboxHandleOptions, InboxMessageSource } from './nest/inbox/inbox.service';
export { INBOX_OPTIONS } from './nest/inbox/inbox.options';
export type { InboxModuleOptions } from './nest/inbox/inbox.options';
export { transportMessageId } from './nest/inbox/transport-message-id';

// Message contracts (`contracts` option): versioned JSON Schemas checked on publish and consume
export {
  defineContract,
  DATASCHEMA_HEADER,
  dataschemaOf,
  parseDataschema,
} from './core/contracts/message-contract';
export type {
  MessageContract,
  JsonSchema,
  CompatibilityMode,
} from './core/contracts/message-contract';
export { ContractViolationError } from './core/contracts/contract-errors';
export type { SchemaError } from './core/contracts/schema-compiler';
export type {
  ContractRegistry,
  ContractMessage,
  ContractRefusal,
  IncomingCheck,
} from './core/contracts/contract-registry';
export type { SagaOutboxContractsOptions } from './nest/contracts/contracts.options';
export { SAGE_CONTRACTS } from './nest/contracts/sage-contracts.token';
export type { SageContracts } from './nest/contracts/sage-contracts.token';
/**
 * `contracts` without the Nest module: `{ outgoing, incoming }` registries from `{ publishes,
 * consumes }` (give `outgoing` to OutboxPublisher's `contracts`).
 */
export { createContracts } from './nest/contracts/create-contracts';
// AsyncAPI 3.0 document of a service from its contracts (`sage asyncapi`)
export {
  asyncApiDocument,
  ASYNCAPI_VERSION,
  JSON_SCHEMA_2020_12_FORMAT,
} from './core/contracts/asyncapi';
export type { AsyncApiService, AsyncApiServer } from './core/contracts/asyncapi';
// Schema compatibility between contract versions (`sage contracts check` / `snapshot`)
export { compareSchemas, MAX_SCHEMA_COMPARE_DEPTH } from './core/contracts/schema-compatibility';
export type { SchemaChange, SchemaCompatibility } from './core/contracts/schema-compatibility';
export {
  buildContractSnapshot,
  contractSnapshotText,
  CONTRACT_SNAPSHOT_FORMAT,
  diffContractSnapshots,
  parseContractSnapshot,
} from './core/contracts/contract-snapshot';
export type {
  ContractChange,
  ContractDiff,
  ContractSnapshot,
  SnapshotVersion,
} from './core/contracts/contract-snapshot';

// Tracing (the port; the OpenTelemetry implementation is @sage/saga-outbox/tracing)
export { NO_TRACING } from './core/ports/tracer';
export type { SageTracer } from './core/ports/tracer';
export type { SageLogger } from './core/ports/logger';
export { NestSageLogger } from './nest/nest-sage-logger';
