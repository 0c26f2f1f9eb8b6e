import { createHmac, timingSafeEqual } from 'node:crypto';
import { canonicalJson } from '../canonical-json';
import { InvalidOptionsError } from '../errors';
import { MessageRefusedError } from '../inbox/message-refused';
import type { JsonValue } from '../json';
import type { KeyProvider } from '../ports/key-provider';

/**
 * HMAC-SHA256 message signatures (version `v1`). What is signed, as canonical JSON: the message
 * id, type, destination, key, payload and every `sage-*` header (names lower-cased) except the
 * signature's own and the `sage-dead-letter-*` ones adapters add. So a signature cannot be moved
 * to another message id (replay under a new id), another destination or type, and no Sage header
 * (saga id, step, attempt, idempotency key, reply destination, outcome) can be changed. Not
 * signed: transport and CloudEvents attributes derived from the fields above (`ce-id`, `ce-type`,
 * `ce-subject`), `ce-source`, `ce-time`, `traceparent` and any other header.
 *
 * The signature travels as `sage-signature: v1=<base64>` with `sage-signature-key: <key id>`.
 */

export const SIGNATURE_HEADER = 'sage-signature';
export const SIGNATURE_KEY_HEADER = 'sage-signature-key';
const VERSION = 'v1';
const DEAD_LETTER_PREFIX = 'sage-dead-letter-';

/** The parts of a message a signature covers (an outbox message, a delivered one). */
export interface SignableMessage {
  id: string;
  type: string;
  destination: string;
  key: string | null;
  payload: JsonValue;
  headers: Readonly<Record<string, string>>;
}

/** The text signed for `message` (stable: the same on the producer and on every consumer). */
export function signedText(message: SignableMessage): string {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers)) {
    const lower = name.toLowerCase();
    if (!lower.startsWith('sage-') || lower.startsWith(DEAD_LETTER_PREFIX)) continue;
    if (lower === SIGNATURE_HEADER || lower === SIGNATURE_KEY_HEADER) continue;
    headers[lower] = value;
  }
  return canonicalJson({
    v: VERSION,
    id: message.id,
    type: message.type,
    destination: message.destination,
    key: message.key,
    headers,
    payload: message.payload,
  });
}

function hmac(secret: Uint8Array, message: SignableMessage): Buffer {
  return createHmac('sha256', secret).update(signedText(message), 'utf8').digest();
}

/** The two headers that sign `message` with the provider's active key. */
export function signatureHeaders(
  message: SignableMessage,
  keys: KeyProvider,
): Record<string, string> {
  const keyId = keys.activeKeyId();
  const secret = keys.key(keyId);
  // signingKeys() refuses an active id it does not hold; a custom provider might not.
  if (!secret)
    throw new InvalidOptionsError(
      'signing.keys',
      'activeKeyId() names a key the provider does not hold; nothing can be signed',
    );
  return {
    [SIGNATURE_HEADER]: `${VERSION}=${hmac(secret, message).toString('base64')}`,
    [SIGNATURE_KEY_HEADER]: keyId,
  };
}

/** `message` with its signature headers added (replacing any it had). */
export function signMessage<M extends SignableMessage>(message: M, keys: KeyProvider): M {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers)) {
    const lower = name.toLowerCase();
    if (lower !== SIGNATURE_HEADER && lower !== SIGNATURE_KEY_HEADER) headers[name] = value;
  }
  return { ...message, headers: { ...headers, ...signatureHeaders(message, keys) } };
}

/**
 * Checks `message`'s signature against `keys`; throws MessageRefusedError (`signature-missing`,
 * `signature-key-unknown` or `signature-invalid`) when it does not hold. The comparison is
 * constant-time. Neither the expected signature nor any key appears in the error.
 */
export function verifyMessageSignature(message: SignableMessage, keys: KeyProvider): void {
  // Two `sage-*` headers whose names differ only in case: the signed text keeps one of them, a
  // reader might take the other. Never ambiguous, so never accepted.
  const seen = new Set<string>();
  for (const name of Object.keys(message.headers)) {
    const lower = name.toLowerCase();
    if (!lower.startsWith('sage-')) continue;
    if (seen.has(lower))
      throw new MessageRefusedError(
        'signature-invalid',
        `it carries the header ${JSON.stringify(lower.slice(0, 64))} twice (names differing only in case)`,
      );
    seen.add(lower);
  }
  const signature = header(message.headers, SIGNATURE_HEADER);
  const keyId = header(message.headers, SIGNATURE_KEY_HEADER);
  if (signature === undefined || keyId === undefined)
    throw new MessageRefusedError(
      'signature-missing',
      `signatures are required and the message has no "${signature === undefined ? SIGNATURE_HEADER : SIGNATURE_KEY_HEADER}" header`,
    );
  const secret = keys.key(keyId);
  if (!secret)
    throw new MessageRefusedError(
      'signature-key-unknown',
      `it is signed with key ${JSON.stringify(keyId.slice(0, 64))}, which this consumer does not hold`,
    );
  const given = signature.startsWith(`${VERSION}=`)
    ? Buffer.from(signature.slice(VERSION.length + 1), 'base64')
    : Buffer.alloc(0);
  const expected = hmac(secret, message);
  // timingSafeEqual needs equal lengths; the length of an HMAC-SHA256 is public (32 bytes).
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    throw new MessageRefusedError(
      'signature-invalid',
      `its signature (key ${JSON.stringify(keyId.slice(0, 64))}) does not match its id, type, destination, key, sage-* headers and payload`,
    );
}

/** Header `name` of `headers`, matched ignoring case (transports may change the case of names). */
function header(headers: Readonly<Record<string, string>>, name: string): string | undefined {
  if (typeof headers[name] === 'string') return headers[name];
  for (const [key, value] of Object.entries(headers)) if (key.toLowerCase() === name) return value;
  return undefined;
}
