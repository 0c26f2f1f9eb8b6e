import { consumerThroughput } from './consumer-throughput';
import { contractValidationCost } from './contract-validation-cost';
import { dataProtectionCost } from './data-protection-cost';
import { brokerTuning } from './broker-tuning';
import { outboxBrokerThroughput } from './outbox-broker-throughput';
import { outboxCommitToAck } from './outbox-commit-to-ack';
import { outboxCommitToPublish } from './outbox-commit-to-publish';
import { outboxRelayThroughput } from './outbox-relay-throughput';
import { outboxRetention } from './outbox-retention';
import { outboxWalRelayThroughput } from './outbox-wal-relay-throughput';
import { outboxBacklogScaling } from './outbox-backlog-scaling';
import { sagaLocal3Step, sagaLocal3StepFirstStepInStart } from './saga-local-3step';
import { sagaRemote2Step } from './saga-remote-2step';
import { peerPgTransactionalOutbox } from './peer-pg-transactional-outbox';
import { soak } from './soak';
import type { Scenario } from './scenario';

/** Every scenario, in the order a full run executes them. */
export const SCENARIOS: readonly Scenario[] = [
  sagaLocal3Step,
  sagaLocal3StepFirstStepInStart,
  outboxRelayThroughput,
  outboxCommitToPublish,
  outboxRetention,
  outboxBrokerThroughput,
  outboxWalRelayThroughput,
  outboxBacklogScaling,
  brokerTuning,
  outboxCommitToAck,
  sagaRemote2Step,
  peerPgTransactionalOutbox,
  dataProtectionCost,
  contractValidationCost,
  consumerThroughput,
  soak,
];
