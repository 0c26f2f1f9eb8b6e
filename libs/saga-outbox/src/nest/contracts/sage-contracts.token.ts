import type { ContractRegistry } from '../../core/contracts/contract-registry';

/**
 * The module's compiled contracts (the `contracts` option), built once at startup: `outgoing`
 * (`contracts.publishes`) checks what the outbox writes and the success replies the sagas receive;
 * `incoming` (`contracts.consumes`) checks what the inbox delivers and what `@SagaCommandHandler`s
 * answer.
 */
export interface SageContracts {
  readonly outgoing: ContractRegistry;
  readonly incoming: ContractRegistry;
}

/**
 * Injection token of this module's SageContracts, or null when the `contracts` option is absent.
 * The outbox write path and every inbox subscription use this one instance; an app may use it too,
 * e.g. to give SageBrokerTransport `contracts: app.get(SAGE_CONTRACTS)?.incoming`.
 */
export const SAGE_CONTRACTS = Symbol('SAGE_CONTRACTS');
