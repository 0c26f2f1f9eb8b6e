import type { DeliveredMessage } from '../ports/broker';
import { refuseEncryptedWithoutKeys, type DataProtector } from '../protection/data-protector';
import { DataUnreadableError } from '../protection/protection-errors';

/** What decrypting a delivery needs of DataProtector. */
export type MessageOpener = Pick<DataProtector<unknown>, 'openMessage'>;

/**
 * `message` with its encrypted fields (`dataProtection`) decrypted, or the DataUnreadableError that
 * makes it unhandleable (a key not held, an erased subject, tampered; or marked `sage-encrypted`
 * while this consumer has no `protector`): dead-letter it with that error's message as the reason.
 * What else fails (SubjectKeyStoreUnavailableError) propagates: redeliver it later.
 */
export async function readableMessage(
  message: DeliveredMessage,
  protector: MessageOpener | null | undefined,
): Promise<DeliveredMessage | DataUnreadableError> {
  try {
    if (!protector) {
      refuseEncryptedWithoutKeys(message);
      return message;
    }
    return await protector.openMessage(message);
  } catch (error) {
    if (error instanceof DataUnreadableError) return error;
    throw error;
  }
}
