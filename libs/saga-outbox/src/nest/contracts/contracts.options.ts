import { defineContract, type MessageContract } from '../../core/contracts/message-contract';
import { InvalidOptionsError } from '../../core/errors';

/**
 * The `contracts` option of SagaOutboxModule: the message contracts (defineContract) of this
 * service, in two lists.
 * - `publishes`: what it writes to its outbox (the events it publishes, the commands its sagas'
 *   remote steps send). Each message of such a type is validated before it is written
 *   (ContractViolationError, nothing written) and carries `ce-dataschema` naming its version; a
 *   command's `reply` schema checks the success replies its sagas receive.
 * - `consumes`: what it accepts (the events its `@IdempotentHandler`s take, the commands its
 *   `@SagaCommandHandler`s take). The versions listed are the versions accepted; the upcasters
 *   come from these. A delivery that does not match is dead-lettered at once, never handled; a
 *   command's `reply` schema checks what the handler answers.
 *
 * Types listed nowhere pass unchecked. Needs the optional peers `ajv` and `ajv-formats`.
 */
export interface SagaOutboxContractsOptions {
  publishes?: readonly MessageContract[];
  consumes?: readonly MessageContract[];
}

const LISTS = ['publishes', 'consumes'] as const;

/** Checks the option's shape at the module boundary (each contract with defineContract's checks). */
export function validateContractsOptions(value: unknown): SagaOutboxContractsOptions | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new InvalidOptionsError(
      'contracts',
      'must be an object { publishes?: MessageContract[], consumes?: MessageContract[] }',
    );
  for (const key of Object.keys(value))
    if (!(LISTS as readonly string[]).includes(key))
      throw new InvalidOptionsError(
        `contracts.${key}`,
        'unknown option; known: publishes (what this service writes), consumes (what it accepts)',
      );
  const options = value as SagaOutboxContractsOptions;
  for (const list of LISTS) {
    const contracts: unknown = options[list];
    if (contracts === undefined) continue;
    if (!Array.isArray(contracts))
      throw new InvalidOptionsError(
        `contracts.${list}`,
        'must be an array of contracts (defineContract({ type, version, schema }))',
      );
    for (const contract of contracts as unknown[]) defineContract(contract as MessageContract);
  }
  return options;
}
