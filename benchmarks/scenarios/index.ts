import { outboxCommitToPublish } from './outbox-commit-to-publish';
import { outboxRelayThroughput } from './outbox-relay-throughput';
import { outboxRetention } from './outbox-retention';
import { sagaLocal3Step } from './saga-local-3step';
import type { Scenario } from './scenario';

/** Every scenario, in the order a full run executes them. */
export const SCENARIOS: readonly Scenario[] = [
  sagaLocal3Step,
  outboxRelayThroughput,
  outboxCommitToPublish,
  outboxRetention,
];
