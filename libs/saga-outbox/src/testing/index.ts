// Test helpers for users of the library: `@sage/saga-outbox/testing` (imports jest globals, so it
// is kept out of the main entry point).
export { InMemorySagaStore, InMemoryTx } from './in-memory-saga-store';
export type { StepFaultStage } from './in-memory-saga-store';
export { describeSagaStoreConformance } from './saga-store-conformance';
export type { SagaStoreConformanceHarness } from './saga-store-conformance';
export { describeBrokerConformance } from './broker-conformance';
export type { BrokerConformanceHarness } from './broker-conformance';
export { analysePublications } from './recording-broker';
export type { PublicationAnalysis } from './recording-broker';
export { InMemoryInboxStore } from './in-memory-inbox-store';
export { InMemoryOutboxStore } from './in-memory-outbox-store';
export type { InMemoryInboxFaultPoint } from './in-memory-inbox-store';
