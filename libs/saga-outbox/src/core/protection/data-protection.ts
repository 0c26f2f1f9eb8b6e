import { InvalidOptionsError } from '../errors';
import type { SagaStore } from '../ports/saga-store';
import type { SubjectKeyStore } from '../ports/subject-key-store';
import { validateDataProtection, type DataProtectionOptions } from './data-protection-options';
import { DataProtector } from './data-protector';
import { ProtectingSagaStore } from './protecting-saga-store';

/**
 * `dataProtection` outside `SagaOutboxModule` (a plain `SagaEngine`, `OutboxPublisher` or inbox
 * subscription, a benchmark): what the module builds from the option, in one place.
 */
export interface DataProtection<Tx = unknown> {
  /**
   * Seals and opens declared fields. Give it to `OutboxPublisher` as `protector` (declared message
   * fields are encrypted in the caller's transaction); a consumer calls `openMessage` before its
   * handler sees a delivered message.
   */
  readonly protector: DataProtector<Tx>;
  /**
   * `store` wrapped so that declared saga input and step-result fields are encrypted as they are
   * stored and decrypted as they are loaded: pass the result as `SagaEngine`'s `store`.
   */
  protectSagaStore(store: SagaStore<Tx>): SagaStore<Tx>;
}

/**
 * Builds data protection from the same options as the module's `dataProtection` (checked here,
 * InvalidOptionsError naming the option). Unlike the module, it has no database of its own: a rule
 * with a `subject` needs `subjectKeys`, e.g. `new PostgresSubjectKeyStore(dataSource)` (the
 * `subject_key` table). See docs/data-protection.md.
 *
 * ```ts
 * const protection = createDataProtection<EntityManager>({
 *   keys: encryptionKeysFromEnv(),
 *   subjectKeys: new PostgresSubjectKeyStore(dataSource),
 *   sagas: { 'order-placement': { subject: 'customer.id', input: ['customer.email'] } },
 * });
 * const engine = new SagaEngine({ store: protection.protectSagaStore(new PostgresSagaStore(dataSource)) });
 * ```
 */
export function createDataProtection<Tx = unknown>(
  options: DataProtectionOptions & { subjectKeys?: SubjectKeyStore<Tx> },
): DataProtection<Tx> {
  const settings = validateDataProtection(options);
  if (!settings)
    throw new InvalidOptionsError('dataProtection', 'must be { keys, sagas?, messages? }');
  const perSubject =
    [...settings.sagas.values()].some((s) => s.subject !== undefined) ||
    [...settings.messages.values()].some((m) => m.subject !== undefined);
  if (perSubject && !settings.subjectKeys)
    throw new InvalidOptionsError(
      'dataProtection.subjectKeys',
      'a rule declares a `subject` but no SubjectKeyStore was given; pass `subjectKeys: new PostgresSubjectKeyStore(dataSource)` (SagaOutboxModule does this for you), or drop `subject` to use the master key',
    );
  const protector = new DataProtector<Tx>(settings);
  return {
    protector,
    protectSagaStore: (store) => new ProtectingSagaStore<Tx>(store, protector),
  };
}
