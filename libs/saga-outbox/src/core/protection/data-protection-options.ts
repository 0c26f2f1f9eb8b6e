import { InvalidOptionsError } from '../errors';
import type { JsonValue } from '../json';
import type { KeyProvider } from '../ports/key-provider';
import type { SubjectKeyStore } from '../ports/subject-key-store';
import { parseFieldPath, type FieldPath } from './field-paths';

/** Who the data belongs to: a field of the value (no `*`), or a function of it. */
export type SubjectSelector = string | ((value: JsonValue) => string | number | null | undefined);

/**
 * What of a saga is encrypted. Fields use dotted paths (`customer.email`, `items.*.note`) or `$`
 * for the whole value.
 */
export interface SagaDataProtection {
  /** Fields of the saga's input. */
  input?: readonly string[];
  /** Per step name: fields of the step's result (`['$']`: all of it). */
  results?: Readonly<Record<string, readonly string[]>>;
  /**
   * The data subject, read from the saga's input: its values are encrypted with the subject's own
   * key, so `erase(subjectId)` shreds them. Without it they are encrypted with the master key.
   */
  subject?: SubjectSelector;
}

/** What of a message type (events, commands, replies) is encrypted, in the outbox and on the wire. */
export interface MessageDataProtection {
  /** Fields of the payload (`['$']`: the whole payload). */
  fields: readonly string[];
  /** The data subject, read from the payload (see SagaDataProtection.subject). */
  subject?: SubjectSelector;
}

/**
 * The `dataProtection` module option: envelope encryption (AES-256-GCM) of declared fields of saga
 * inputs, step results and message payloads, with master keys from `keys` and, for values declared
 * per data subject, one key per subject kept in `subjectKeys` (crypto-shredding). See
 * docs/data-protection.md.
 */
export interface DataProtectionOptions {
  /** Master keys: `encryptionKeys({ active, keys })`, `encryptionKeysFromEnv()`, or your KMS-backed KeyProvider. */
  keys: KeyProvider;
  /**
   * Where data-subject keys live. Default: the `subject_key` table in Sage's schema of this
   * service's database. Services exchanging per-subject data must share one store.
   */
  subjectKeys?: SubjectKeyStore;
  /** How long an unwrapped subject key stays in memory (ms). Default 30 s; erasure reaches other processes within it. */
  subjectKeyCacheMs?: number;
  /** Per saga name. */
  sagas?: Readonly<Record<string, SagaDataProtection>>;
  /** Per message type (CloudEvents `type`). */
  messages?: Readonly<Record<string, MessageDataProtection>>;
}

/** A rule with its paths parsed. */
export interface ProtectionRule {
  fields: readonly FieldPath[];
  subject?: { path: FieldPath; text: string } | { fn: (value: JsonValue) => unknown; text: string };
}

export interface SagaProtectionRules {
  input?: ProtectionRule;
  results: ReadonlyMap<string, ProtectionRule>;
  subject?: ProtectionRule['subject'];
}

/** DataProtectionOptions checked, with parsed paths. */
export interface DataProtectionSettings {
  keys: KeyProvider;
  subjectKeys?: SubjectKeyStore;
  subjectKeyCacheMs?: number;
  sagas: ReadonlyMap<string, SagaProtectionRules>;
  messages: ReadonlyMap<string, ProtectionRule>;
}

/** Checks the `dataProtection` option at the module boundary (InvalidOptionsError naming the option). */
export function validateDataProtection(option: unknown): DataProtectionSettings | undefined {
  if (option === undefined) return undefined;
  const where = 'dataProtection';
  if (typeof option !== 'object' || option === null)
    throw new InvalidOptionsError(where, 'must be { keys, sagas?, messages?, subjectKeys? }');
  const o = option as Partial<DataProtectionOptions>;
  const keys = o.keys as Partial<KeyProvider> | undefined;
  if (
    typeof keys !== 'object' ||
    keys === null ||
    typeof keys.activeKeyId !== 'function' ||
    typeof keys.key !== 'function'
  )
    throw new InvalidOptionsError(
      `${where}.keys`,
      'must be a KeyProvider ({ activeKeyId(), key(id) }): encryptionKeys({ active, keys }) or encryptionKeysFromEnv()',
    );
  const active = keys.activeKeyId();
  const activeKey = typeof active === 'string' ? keys.key(active) : undefined;
  if (!activeKey || activeKey.byteLength !== 32)
    throw new InvalidOptionsError(
      `${where}.keys`,
      'activeKeyId() must name a 32-byte key the provider holds (AES-256); nothing could be encrypted',
    );
  if (
    o.subjectKeyCacheMs !== undefined &&
    (typeof o.subjectKeyCacheMs !== 'number' ||
      !Number.isFinite(o.subjectKeyCacheMs) ||
      o.subjectKeyCacheMs < 0)
  )
    throw new InvalidOptionsError(`${where}.subjectKeyCacheMs`, 'must be a number of ms >= 0');
  const sagas = new Map<string, SagaProtectionRules>();
  for (const [name, rule] of Object.entries(o.sagas ?? {})) {
    const at = `${where}.sagas["${name}"]`;
    if (typeof rule !== 'object' || rule === null)
      throw new InvalidOptionsError(at, 'must be { input?, results?, subject? }');
    const subject = subjectOf(rule.subject, `${at}.subject`);
    const results = new Map<string, ProtectionRule>();
    for (const [step, fields] of Object.entries(rule.results ?? {}))
      results.set(step, { fields: fieldsOf(fields, `${at}.results["${step}"]`), subject });
    sagas.set(name, {
      input: rule.input ? { fields: fieldsOf(rule.input, `${at}.input`), subject } : undefined,
      results,
      subject,
    });
  }
  const messages = new Map<string, ProtectionRule>();
  for (const [type, rule] of Object.entries(o.messages ?? {})) {
    const at = `${where}.messages["${type}"]`;
    if (typeof rule !== 'object' || rule === null)
      throw new InvalidOptionsError(at, 'must be { fields, subject? }');
    messages.set(type, {
      fields: fieldsOf(rule.fields, `${at}.fields`),
      subject: subjectOf(rule.subject, `${at}.subject`),
    });
  }
  return {
    keys: keys as KeyProvider,
    subjectKeys: o.subjectKeys,
    subjectKeyCacheMs: o.subjectKeyCacheMs,
    sagas,
    messages,
  };
}

function fieldsOf(fields: unknown, option: string): FieldPath[] {
  if (!Array.isArray(fields) || fields.length === 0)
    throw new InvalidOptionsError(
      option,
      'must be a non-empty array of field paths ("customer.email", or "$" for all)',
    );
  return fields.map((f, i) => parseFieldPath(f, `${option}[${i}]`));
}

function subjectOf(subject: unknown, option: string): ProtectionRule['subject'] {
  if (subject === undefined) return undefined;
  if (typeof subject === 'function')
    return { fn: subject as (value: JsonValue) => unknown, text: 'function' };
  const path = parseFieldPath(subject, option);
  if (path.length === 0 || path.includes('*'))
    throw new InvalidOptionsError(
      option,
      'must name one field ("customer.id"), without "*" or "$"',
    );
  return { path, text: `"${subject as string}"` };
}
