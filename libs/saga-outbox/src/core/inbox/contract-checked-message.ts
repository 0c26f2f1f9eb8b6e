import type { ContractRegistry } from '../contracts/contract-registry';
import { DATASCHEMA_HEADER, dataschemaOf } from '../contracts/message-contract';
import type { DeliveredMessage } from '../ports/broker';
import { MessageRefusedError } from './message-refused';

/** What checking a delivery needs of ContractRegistry (the consumer's `contracts.consumes`). */
export type IncomingContracts = Pick<ContractRegistry, 'checkIncoming'>;

/**
 * `message` as its handler gets it when it matches its contract: the payload upcast to the newest
 * version the consumer's upcasters reach, with `ce-dataschema` naming that version; as it is when
 * its type has no contract (or there are no contracts). Otherwise the MessageRefusedError
 * (`contract-invalid`, `contract-version-unknown`) to dead-letter it with, at once. Run after
 * decryption: a schema describes the plaintext.
 */
export function contractCheckedMessage(
  message: DeliveredMessage,
  contracts: IncomingContracts | null | undefined,
): DeliveredMessage | MessageRefusedError {
  if (!contracts) return message;
  const check = contracts.checkIncoming(message);
  if (!check.ok) return new MessageRefusedError(check.reason, check.detail);
  if (check.version === undefined) return message;
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers))
    if (name.toLowerCase() !== DATASCHEMA_HEADER) headers[name] = value;
  headers[DATASCHEMA_HEADER] = dataschemaOf(message.type, check.version);
  return { ...message, payload: check.payload, headers };
}
