/**
 * `@sage/saga-outbox/testing`: in-memory stores and the conformance suites every store and broker
 * adapter passes (saga, outbox and inbox stores; brokers). Imports `@jest/globals`, so it is kept out of the root entry point.
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
export type { InMemoryInboxFaultPoint } from './in-memory-inbox-store';
export { waitUntil } from './async';
