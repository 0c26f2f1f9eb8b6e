import { jsonTextDepth, MAX_JSON_DEPTH, type JsonValue } from '../core/json';
import { derivedMessageId, messageIdProblem } from '../core/message-id';
import type { BrokerMessage, DeadLetterReason } from '../core/ports/broker';
import { fromCloudEventHeaders, type TransportAttributes } from './cloudevents-headers';

/**
 * A received message → the BrokerMessage handed to the handler, or the reason it must be
 * dead-lettered instead: the one set of checks every adapter (Kafka, RabbitMQ, NATS, memory) runs,
 * in this order, before anything parses or walks the body:
 *
 * 1. the id (transport id, else `ce-id`) must be usable (messageIdProblem) → `missing-id` (none,
 *    or blank) / `unusable-id` (over 512 characters, NUL, an unpaired surrogate);
 * 2. the body must be at most `maxMessageBytes` → `too-large` (not decoded);
 * 3. the body must not be empty → `empty-body`;
 * 4. the body must be UTF-8 JSON nested at most MAX_JSON_DEPTH deep → `not-json` / `too-deep`
 *    (the depth is counted on the text, before JSON.parse).
 *
 * Headers and time never make a message poison: odd header bytes are kept as received (UTF-8
 * decoded), an unparsable `ce-time` falls back to the transport's time (cloudevents-headers.ts).
 */

/**
 * Default attempts at a message whose handler keeps failing before the adapter dead-letters it:
 * twice the inbox's default `maxAttempts` (5), so with the inbox in front the inbox decides.
 */
export const DEFAULT_MAX_DELIVERIES = 10;

/** Default consumer-side body limit, the same as the producer's (1 MiB). */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;

export interface InboundInput {
  destination: string;
  /** Headers as text (the codec decoded the transport's shape and removed its control headers). */
  headers: Record<string, string>;
  transport: TransportAttributes;
  /** The raw body; null/undefined when the transport had none. */
  body: Uint8Array | null | undefined;
  maxMessageBytes: number;
}

/** Why a message is dead-lettered on sight, and the id its dead letter is recorded under. */
export interface InboundPoison {
  reason: DeadLetterReason;
  detail: string;
  /** The message's own id when usable, else `sage-derived:<sha256>` of the raw id or the content. */
  messageId: string;
}

export type Inbound = { ok: true; message: BrokerMessage } | { ok: false; poison: InboundPoison };

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function inboundMessage(input: InboundInput): Inbound {
  const fields = fromCloudEventHeaders(input.headers, input.transport);
  const body = input.body ?? new Uint8Array(0);
  const idProblem = messageIdProblem(fields.id);
  const messageId =
    idProblem === undefined
      ? (fields.id as string)
      : derivedMessageId(typeof fields.id === 'string' ? fields.id : undefined, () =>
          Buffer.concat([Buffer.from(`${input.destination}\n`), body]),
        );
  const poison = (reason: DeadLetterReason, detail: string): Inbound => ({
    ok: false,
    poison: { reason, detail, messageId },
  });
  if (idProblem !== undefined)
    return poison(
      fields.id === undefined ||
        fields.id === null ||
        (typeof fields.id === 'string' && fields.id.trim() === '')
        ? 'missing-id'
        : 'unusable-id',
      idProblem,
    );
  if (body.byteLength > input.maxMessageBytes)
    return poison(
      'too-large',
      `the body is ${body.byteLength} bytes, over maxMessageBytes (${input.maxMessageBytes}); not parsed`,
    );
  if (body.byteLength === 0) return poison('empty-body', 'the body is empty (expected JSON)');
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    return poison('not-json', 'the body is not valid UTF-8');
  }
  if (jsonTextDepth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH)
    return poison(
      'too-deep',
      `the JSON nests arrays/objects more than ${MAX_JSON_DEPTH} levels deep; not parsed`,
    );
  let payload: JsonValue;
  try {
    payload = JSON.parse(text) as JsonValue;
  } catch {
    // Not the parser's message: it quotes the body, which may hold personal data.
    return poison('not-json', 'the body is not valid JSON');
  }
  const { id: _raw, ...rest } = fields;
  return {
    ok: true,
    message: { ...rest, id: messageId, destination: input.destination, payload },
  };
}
