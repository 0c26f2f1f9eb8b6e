import { SagaOutboxError } from '../errors';
import type { SchemaError } from './schema-compiler';

/** `path message; path message` (paths as JSON pointers, `(payload)` for the root). */
export function schemaErrorsText(errors: readonly SchemaError[]): string {
  return errors.map((e) => `${e.path === '' ? '(payload)' : e.path} ${e.message}`).join('; ');
}

/**
 * A message written to the outbox does not match its contract: nothing was written (the caller's
 * transaction should roll back). Names the type, the version and the failing paths, never values.
 */
export class ContractViolationError extends SagaOutboxError {
  constructor(
    readonly index: number,
    readonly type: string,
    readonly version: number,
    readonly errors: readonly SchemaError[],
    /** What was checked: the payload, or a command's reply result. */
    what: 'payload' | 'reply result' = 'payload',
  ) {
    super(
      'CONTRACT_VIOLATION',
      what === 'payload'
        ? `Outbox message #${index} of type "${type}" does not match its contract (version ${version}): payload ${schemaErrorsText(errors)}. Nothing was written; fix the payload, or publish a new contract version if the shape changed on purpose (docs/contracts.md).`
        : `The result a handler returned for a "${type}" command does not match the command's reply contract (version ${version}): reply result ${schemaErrorsText(errors)}. No reply was written (the attempt failed and counts toward maxAttempts); fix the handler's result, or publish a new contract version if the shape changed on purpose (docs/contracts.md).`,
    );
  }
}
