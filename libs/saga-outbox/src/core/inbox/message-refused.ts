import { SagaOutboxError } from '../errors';

/**
 * Why a consumer refused a message outright (never handled, dead-lettered at once):
 * - `signature-missing`: signing is required and the message carries no `sage-signature`;
 * - `signature-key-unknown`: its `sage-signature-key` names no key the consumer holds;
 * - `signature-invalid`: the signature does not match the message (tampered id, type, destination,
 *   key, `sage-*` header or payload; or signed with another secret under the same key id);
 * - `reply-key-mismatch`: a saga reply whose `sage-idempotency-key` is not its step's;
 * - `reply-step-unknown`: a saga reply for a saga or step that does not exist, or is not remote;
 * - `reply-attempt-unknown`: a saga reply for an attempt the step never sent;
 * - `reply-to-not-allowed`: a command whose `sage-reply-to` the participant does not allow;
 * - `contract-invalid`: its payload (or a saga reply's result) does not match its contract, or an
 *   upcaster failed on it (`contracts`; see ContractRegistry.checkIncoming);
 * - `contract-version-unknown`: it declares (`ce-dataschema`) a version of its type this consumer
 *   does not accept.
 */
export type MessageRefusalReason =
  | 'signature-missing'
  | 'signature-key-unknown'
  | 'signature-invalid'
  | 'reply-key-mismatch'
  | 'reply-step-unknown'
  | 'reply-attempt-unknown'
  | 'reply-to-not-allowed'
  | 'contract-invalid'
  | 'contract-version-unknown';

/**
 * A message that must never be handled, whatever the attempt: the inbox dead-letters it at once
 * (no retry) with this error's message as the reason, which starts with the reason code. Thrown by
 * a consumer's verification (signatures, reply destinations) and by the reply protocol (a reply
 * that matches no command Sage sent). The message never names a secret.
 */
export class MessageRefusedError extends SagaOutboxError {
  constructor(
    readonly reason: MessageRefusalReason,
    detail: string,
  ) {
    super(
      'MESSAGE_REFUSED',
      `${reason}: ${detail}. The message was dead-lettered without being handled; ${REFUSAL_FIX[reason]}`,
    );
  }
}

const SIGNING_FIX =
  'if it is genuine, check that its producer signs with a key this consumer holds (signing.keys) and that nothing rewrites its headers or body on the way; otherwise find who can publish to this destination (see docs/security.md)';
const REPLY_FIX =
  'Sage participants echo the command\'s headers, so a genuine reply never does this: find who publishes to the reply destination (see docs/sagas.md, "Which replies are applied")';

const REFUSAL_FIX: Record<MessageRefusalReason, string> = {
  'signature-missing': `sign every producer's messages (signing option) before requiring signatures; ${SIGNING_FIX}`,
  'signature-key-unknown': `add the key id to this consumer's key provider (keep retired keys there until no message signed with them is in flight); ${SIGNING_FIX}`,
  'signature-invalid': SIGNING_FIX,
  'reply-key-mismatch': REPLY_FIX,
  'reply-step-unknown': REPLY_FIX,
  'reply-attempt-unknown': REPLY_FIX,
  'reply-to-not-allowed':
    "add the orchestrator's reply destination to the handler's replyTo allow-list if it is genuine; no reply was sent",
  'contract-invalid':
    "fix what its producer writes (a producer that lists the contract in `contracts.publishes` refuses such a message at publish), or, if the shape changed on purpose, give it a new contract version and deploy it to this consumer's `contracts.consumes`; then replay the dead letter (docs/contracts.md)",
  'contract-version-unknown':
    "add that version's contract to this consumer's `contracts.consumes` (with upcasters to the version the handler expects), or have the producer write a version listed there; then replay the dead letter (docs/contracts.md)",
};
