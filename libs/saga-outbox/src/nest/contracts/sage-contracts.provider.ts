import type { Provider } from '@nestjs/common';
import { ajvSchemaCompiler } from '../../core/contracts/ajv-schema-compiler';
import { ContractRegistry } from '../../core/contracts/contract-registry';
import type { SchemaCompiler } from '../../core/contracts/schema-compiler';
import { loadOptionalPeer } from '../../optional-peer';
import { SAGA_OUTBOX_OPTIONS } from '../saga-outbox.module-definition';
import type { SagaOutboxModuleOptions } from '../saga-outbox.options';
import { validateContractsOptions } from './contracts.options';
import { SAGE_CONTRACTS, type SageContracts } from './sage-contracts.token';

export { SAGE_CONTRACTS } from './sage-contracts.token';

type AjvPeer = Parameters<typeof ajvSchemaCompiler>[0] extends () => infer P ? P : never;

/**
 * Ajv's draft 2020-12 build and ajv-formats, loaded only when contracts are declared (optional
 * peers: MissingPeerDependencyError names the install line when they are not there).
 */
export function loadAjv(): AjvPeer {
  return loadOptionalPeer('contracts', ['ajv', 'ajv-formats'], () => ({
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy: only with `contracts`
    Ajv2020: (require('ajv/dist/2020') as { default: AjvPeer['Ajv2020'] }).default,
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy: only with `contracts`
    addFormats: (require('ajv-formats') as { default: AjvPeer['addFormats'] }).default,
  }));
}

/**
 * Both registries of the `contracts` option, every schema compiled now (a schema that does not
 * compile, a duplicate version, a missing peer fail startup naming the contract). Each list gets
 * its own Ajv instance, so the same `$id` may appear in both. Null without the option.
 */
export function buildSageContracts(
  option: SagaOutboxModuleOptions['contracts'],
  compiler: () => SchemaCompiler = () => ajvSchemaCompiler(loadAjv),
): SageContracts | null {
  const contracts = validateContractsOptions(option);
  if (!contracts) return null;
  return {
    outgoing: new ContractRegistry(contracts.publishes ?? [], compiler()),
    incoming: new ContractRegistry(contracts.consumes ?? [], compiler()),
  };
}

/** Provides SAGE_CONTRACTS (SageContracts | null) from the module's `contracts` option. */
export const sageContractsProvider: Provider = {
  provide: SAGE_CONTRACTS,
  inject: [SAGA_OUTBOX_OPTIONS],
  useFactory: (options: SagaOutboxModuleOptions): SageContracts | null =>
    buildSageContracts(options.contracts),
};
