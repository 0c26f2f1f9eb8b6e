/**
 * `@sage/saga-outbox/testing`: in-memory stores and the conformance suites every store and broker
 * adapter passes (saga, outbox and inbox stores; brokers), and the crash harness that tests your own
 * sagas at every step boundary (`sagaCrashHarness`; it loads `@nestjs/testing` and, by default,
 * PGlite when it runs). Imports `@jest/globals`, so it is kept out of the root entry point.
 *
 * @packageDocumentation
 */
export { InMemorySagaStore, InMemoryTx } from './in-memory-saga-store';
export type { StepFaultStage } from './in-memory-saga-store';
export { describeSagaStoreConformance } from './saga-store-conformance';
export type { SagaStoreConformanceHarness } from './saga-store-conformance';
export { describeOutboxStoreConformance } from './outbox-store-conformance';
export type {
  ConformanceClock,
  OutboxStoreConformanceHarness,
  OutboxStoreUnderTest,
} from './outbox-store-conformance';
export { describeInboxStoreConformance } from './inbox-store-conformance';
export type { InboxStoreConformanceHarness, InboxStoreUnderTest } from './inbox-store-conformance';
export { describeBrokerConformance } from './broker-conformance';
export type { BrokerConformanceHarness } from './broker-conformance';
export { analysePublications } from './recording-broker';
export type { PublicationAnalysis } from './recording-broker';
export { InMemoryInboxStore } from './in-memory-inbox-store';
export { InMemoryOutboxStore } from './in-memory-outbox-store';
export { InMemorySubjectKeyStore } from './in-memory-subject-key-store';
export { subjectKeyStoreConformance } from './subject-key-store-conformance';
export type { SubjectKeyStoreUnderTest } from './subject-key-store-conformance';
export type { InMemoryInboxFaultPoint } from './in-memory-inbox-store';
export { waitUntil } from './async';
export { sagaCrashHarness } from './crash-harness/saga-crash-harness';
export type {
  SagaCrashHarness,
  SagaCrashHarnessOptions,
  CrashHarnessCheck,
  CrashRunInfo,
} from './crash-harness/saga-crash-harness';
export type { CrashBoundary, CrashPoint } from './crash-harness/crash-boundaries';
export type { CrashRunReport, CrashHarnessReport } from './crash-harness/crash-run-report';
export { CrashHarnessFailure } from './crash-harness/crash-harness-failure';
export { StepFault, StepFaultInjectedError } from './crash-harness/step-faults';
export type { StepFaultOptions } from './crash-harness/step-faults';
export type { RemoteStepReplies, SagaOutboxMessage } from './crash-harness/remote-participant';
export type { StepActivity, StepPhaseActivity, StepCommit } from './crash-harness/run-activity';
export type { SagaUnderTest } from './crash-harness/saga-under-test';
export type { MigrationClass } from './crash-harness/harness-database';
