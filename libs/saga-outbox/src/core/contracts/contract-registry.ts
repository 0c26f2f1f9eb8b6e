import { InvalidOptionsError } from '../errors';
import { errorText } from '../error-text';
import type { JsonValue } from '../json';
import { ContractViolationError, schemaErrorsText } from './contract-errors';
import {
  DATASCHEMA_HEADER,
  dataschemaOf,
  defineContract,
  parseDataschema,
  type MessageContract,
} from './message-contract';
import type { SchemaCheck, SchemaCompiler } from './schema-compiler';

/** One version of a type, compiled. */
interface CompiledVersion {
  contract: MessageContract;
  check: SchemaCheck;
  checkReply?: SchemaCheck;
}

/** The parts of a message the registry reads. */
export interface ContractMessage {
  type: string;
  payload: JsonValue;
  headers: Readonly<Record<string, string>>;
}

/**
 * Why an incoming message was refused by its contract (dead-lettered at once, never handled):
 * - `contract-invalid`: its payload does not match the schema of the version it declares (or of the
 *   newest version, when it declares none), or an upcaster's output does not match the next one;
 * - `contract-version-unknown`: it declares a version of its type this consumer does not accept.
 */
export type ContractRefusal = {
  reason: 'contract-invalid' | 'contract-version-unknown';
  detail: string;
};

/** What a consumer handles: the payload upcast as far as upcasters go, and its version. */
export type IncomingCheck =
  | { ok: true; payload: JsonValue; version: number | undefined; upcast: boolean }
  | ({ ok: false } & ContractRefusal);

/**
 * The contracts a service knows, compiled once: validates what it writes to the outbox
 * (`checkOutgoing`, before anything is written) and what its inbox delivers (`checkIncoming`,
 * after decryption, before the handler), negotiating versions through the CloudEvents
 * `dataschema` header and upcasting older versions with the contracts' `upcast` functions.
 * Types without a contract pass unchecked.
 */
export class ContractRegistry {
  private readonly byType = new Map<string, CompiledVersion[]>();

  constructor(contracts: readonly MessageContract[], compiler: SchemaCompiler) {
    if (!Array.isArray(contracts))
      throw new InvalidOptionsError(
        'contracts',
        'must be an array of contracts (defineContract(...))',
      );
    for (const raw of contracts as readonly MessageContract[]) {
      const contract = defineContract(raw);
      const versions = this.byType.get(contract.type) ?? [];
      const where = `contracts["${contract.type}"] v${contract.version}`;
      if (versions.some((v) => v.contract.version === contract.version))
        throw new InvalidOptionsError(where, 'is declared twice; each version of a type once');
      const kinds = new Set(versions.map((v) => v.contract.kind ?? 'event'));
      if (kinds.size && !kinds.has(contract.kind ?? 'event'))
        throw new InvalidOptionsError(
          `${where}.kind`,
          'differs from the other versions of the type',
        );
      versions.push({
        contract,
        check: compiler.compile(contract.schema, `${where}.schema`),
        checkReply:
          contract.reply === undefined
            ? undefined
            : compiler.compile(contract.reply, `${where}.reply`),
      });
      versions.sort((a, b) => a.contract.version - b.contract.version);
      this.byType.set(contract.type, versions);
    }
  }

  /** Every contract, by type then version. */
  all(): MessageContract[] {
    return [...this.byType.values()].flatMap((versions) => versions.map((v) => v.contract));
  }

  /** The newest version of `type`, or undefined when it has no contract. */
  latest(type: string): MessageContract | undefined {
    return this.byType.get(type)?.at(-1)?.contract;
  }

  /**
   * For a message about to be written: checks its payload against the version its `ce-dataschema`
   * header names (a producer may still write an older version while consumers upgrade), else the
   * newest one, and returns the headers to write (with `ce-dataschema` set), or the message's own
   * when its type has no contract. Throws ContractViolationError (`index`: its place in the batch).
   */
  checkOutgoing(message: ContractMessage, index: number): Record<string, string> {
    const versions = this.byType.get(message.type);
    if (!versions) return { ...message.headers };
    const declared = headerOf(message.headers, DATASCHEMA_HEADER);
    const named = declared === undefined ? undefined : parseDataschema(declared);
    let target = versions.at(-1)!;
    if (declared !== undefined) {
      const match =
        named?.type === message.type
          ? versions.find((v) => v.contract.version === named.version)
          : undefined;
      if (!match)
        throw new ContractViolationError(index, message.type, target.contract.version, [
          {
            path: '',
            message: `declares ${DATASCHEMA_HEADER} "${declared}", which is not a version of this type's contract (${versions.map((v) => `v${v.contract.version}`).join(', ')})`,
          },
        ]);
      target = match;
    }
    const errors = target.check(message.payload);
    if (errors.length)
      throw new ContractViolationError(index, message.type, target.contract.version, errors);
    const headers = withoutHeader(message.headers, DATASCHEMA_HEADER);
    headers[DATASCHEMA_HEADER] = dataschemaOf(message.type, target.contract.version);
    return headers;
  }

  /**
   * For a participant's success reply to a command of `commandType`: checks the result against the
   * command contract's `reply` schema (newest version). Throws ContractViolationError.
   */
  checkReplyResult(commandType: string, result: JsonValue, index = 0): void {
    const latest = this.byType.get(commandType)?.at(-1);
    if (!latest?.checkReply) return;
    const errors = latest.checkReply(result);
    if (errors.length)
      throw new ContractViolationError(
        index,
        commandType,
        latest.contract.version,
        errors,
        'reply result',
      );
  }

  /** For a success reply received by the orchestrator: the reply-result problems, if any. */
  replyResultRefusal(commandType: string, result: JsonValue): ContractRefusal | undefined {
    const latest = this.byType.get(commandType)?.at(-1);
    if (!latest?.checkReply) return undefined;
    const errors = latest.checkReply(result);
    return errors.length
      ? {
          reason: 'contract-invalid',
          detail: `the reply result to a "${commandType}" command does not match its contract (version ${latest.contract.version}): ${schemaErrorsText(errors)}`,
        }
      : undefined;
  }

  /**
   * For a delivered message: checks its payload against the version it declares (`ce-dataschema`;
   * the newest version when it declares none), then upcasts it version by version with each newer
   * version's `upcast`, checking each result, as far as upcasters go (the newest version when every
   * one has one). Types without a contract, and `dataschema` URIs that are not Sage's, pass as they are
   * (the latter checked against the newest version).
   */
  checkIncoming(message: ContractMessage): IncomingCheck {
    const versions = this.byType.get(message.type);
    if (!versions) return { ok: true, payload: message.payload, version: undefined, upcast: false };
    const declared = headerOf(message.headers, DATASCHEMA_HEADER);
    const named = declared === undefined ? undefined : parseDataschema(declared);
    let at = versions.length - 1;
    if (named !== undefined) {
      const index = versions.findIndex(
        (v) => named.type === message.type && v.contract.version === named.version,
      );
      if (index < 0)
        return {
          ok: false,
          reason: 'contract-version-unknown',
          detail: `"${message.type}" version ${named.type === message.type ? named.version : `of another type ("${named.type}")`} is not among the versions this consumer accepts (${versions.map((v) => `v${v.contract.version}`).join(', ')})`,
        };
      at = index;
    }
    let payload = message.payload;
    let errors = versions[at]!.check(payload);
    if (errors.length)
      return {
        ok: false,
        reason: 'contract-invalid',
        detail: `"${message.type}" does not match its contract (version ${versions[at]!.contract.version}): ${schemaErrorsText(errors)}`,
      };
    let upcast = false;
    while (at + 1 < versions.length && versions[at + 1]!.contract.upcast) {
      const next = versions[at + 1]!;
      try {
        payload = next.contract.upcast!(structuredClone(payload));
      } catch (error) {
        return {
          ok: false,
          reason: 'contract-invalid',
          detail: `upcasting "${message.type}" to version ${next.contract.version} failed: ${errorText(error)}`,
        };
      }
      errors = next.check(payload);
      if (errors.length)
        return {
          ok: false,
          reason: 'contract-invalid',
          detail: `"${message.type}" upcast to version ${next.contract.version} does not match that version: ${schemaErrorsText(errors)}`,
        };
      at += 1;
      upcast = true;
    }
    return { ok: true, payload, version: versions[at]!.contract.version, upcast };
  }
}

function headerOf(headers: Readonly<Record<string, string>>, name: string): string | undefined {
  for (const [key, value] of Object.entries(headers)) if (key.toLowerCase() === name) return value;
  return undefined;
}

function withoutHeader(
  headers: Readonly<Record<string, string>>,
  name: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers))
    if (key.toLowerCase() !== name) out[key] = value;
  return out;
}
