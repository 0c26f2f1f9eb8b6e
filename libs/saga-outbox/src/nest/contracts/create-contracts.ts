import { InvalidOptionsError } from '../../core/errors';
import type { SagaOutboxContractsOptions } from './contracts.options';
import { buildSageContracts } from './sage-contracts.provider';
import type { SageContracts } from './sage-contracts.token';

/**
 * The `contracts` option outside `SagaOutboxModule` (a plain `OutboxPublisher` or inbox
 * subscription, a script, a benchmark): both registries, every schema compiled now, with the same
 * checks as the module (InvalidOptionsError naming the contract; MissingPeerDependencyError when
 * `ajv` / `ajv-formats` are not installed). See docs/contracts.md.
 *
 * ```ts
 * const contracts = createContracts({ publishes: [OrderConfirmedV2], consumes: [OrderConfirmedV1, OrderConfirmedV2] });
 * const publisher = new OutboxPublisher({ writer: new PostgresOutboxStore(dataSource), contracts: contracts.outgoing });
 * contracts.incoming.checkIncoming(delivered); // what the inbox runs before a handler
 * ```
 */
export function createContracts(options: SagaOutboxContractsOptions): SageContracts {
  const contracts = buildSageContracts(options);
  if (!contracts)
    throw new InvalidOptionsError(
      'contracts',
      'must be an object { publishes?: MessageContract[], consumes?: MessageContract[] }',
    );
  return contracts;
}
