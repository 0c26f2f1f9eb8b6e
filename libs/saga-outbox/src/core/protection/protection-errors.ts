import { SagaOutboxError } from '../errors';

/**
 * Why a protected value could not be read:
 * - `key-unavailable`: its master key id is not held by this process's `dataProtection.keys`;
 * - `subject-erased`: its data subject's key no longer exists (erased, or never shared with this
 *   service's key store);
 * - `tampered`: the ciphertext does not authenticate: altered, truncated, encrypted with another
 *   secret under the same key id, or moved from the row, message or field it was written for;
 * - `malformed`: the envelope's fields are not what Sage writes (bad base64, wrong nonce size);
 * - `no-keys`: the value is encrypted but this service has no `dataProtection` option at all.
 */
export type UnreadableReason =
  'key-unavailable' | 'subject-erased' | 'tampered' | 'malformed' | 'no-keys';

const FIX: Record<UnreadableReason, string> = {
  'key-unavailable':
    'add the key id to dataProtection.keys (keep retired keys there until `sage keys rotate` has rewritten everything encrypted with them and no message encrypted with them is in flight)',
  'subject-erased':
    'the data subject was erased (crypto-shredding): the value is gone for good. If the subject was not erased, point dataProtection.subjectKeys at the key store its producer uses',
  tampered:
    'the stored or delivered bytes were changed, or copied from another row, message or field; restore them from the original or discard the record',
  malformed: 'the envelope was not written by Sage or was damaged in transit',
  'no-keys':
    'configure dataProtection (keys, and subjectKeys when values are per data subject) on this service, as on its producer',
};

/**
 * A protected (encrypted) value could not be decrypted. The message names the location (saga id
 * and field, or message id and type) and the JSON pointer inside it, never the value. Consumers
 * dead-letter a message that raises it (not retried: the same bytes fail the same way).
 */
export class DataUnreadableError extends SagaOutboxError {
  constructor(
    readonly reason: UnreadableReason,
    /** Where the value lives, e.g. `message/<id>/<type>` or `saga/<id>/input`. */
    readonly location: string,
    /** The JSON pointer of the value inside it (`""` for the whole value). */
    readonly pointer: string,
    options?: { cause?: unknown },
  ) {
    super(
      'DATA_UNREADABLE',
      `${reason}: the encrypted value at ${location}${pointer === '' ? '' : ` ${pointer}`} cannot be read; ${FIX[reason]}.`,
      options,
    );
  }
}

/** A write declared per data subject has no usable subject id: nothing was written. */
export class DataSubjectMissingError extends SagaOutboxError {
  constructor(
    /** `saga "<name>"` or `message type "<type>"`. */
    readonly what: string,
    readonly subject: string,
  ) {
    super(
      'DATA_SUBJECT_MISSING',
      `${what} is encrypted per data subject (dataProtection subject ${subject}) but this value has no subject id there (a non-empty string or a number is required). Nothing was written; include the subject id, or drop \`subject\` from the rule to encrypt with the service's key.`,
    );
  }
}

/**
 * The subject key store could not be reached or answered with an error (a database outage). Not the
 * data's fault: a consumer redelivers the message later instead of dead-lettering it.
 */
export class SubjectKeyStoreUnavailableError extends SagaOutboxError {
  constructor(cause: unknown) {
    super(
      'SUBJECT_KEYS_UNAVAILABLE',
      'The data-subject key store cannot be reached; the operation is retried later. Check the database behind dataProtection.subjectKeys.',
      { cause },
    );
  }
}
