import type { JsMsg } from '@nats-io/jetstream';
import type { JsonValue } from '../../core/json';
import type { BrokerMessage, DeliveredMessage } from '../../core/ports/broker';
import { headers as natsHeaders, type MsgHdrs } from './nats-client';

/**
 * BrokerMessage ⇄ NATS message, CloudEvents 1.0 binary mode: the event attributes travel as
 * `ce-*` headers, the JSON payload is the body (`content-type: application/json`). `ce-subject`
 * carries the outbox key (absent when the key is null). The message's own headers (`traceparent`,
 * extensions) travel as they are, except that the attributes derived from the message's fields
 * always win, and `Nats-*` headers are refused: they steer JetStream itself (`Nats-Msg-Id`,
 * `Nats-Expected-*`, `Nats-Rollup` would purge the subject).
 */

const SPECVERSION = '1.0';
const CONTENT_TYPE = 'application/json';
/** Attributes rebuilt from BrokerMessage fields on delivery, so not repeated in `headers`. */
const FIELD_HEADERS = new Set([
  'ce-specversion',
  'ce-id',
  'ce-type',
  'ce-time',
  'ce-subject',
  'content-type',
]);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A message NATS will never accept as it is (bad subject or header): fail it, do not retry. */
export class NatsMessageRejected extends Error {}

export interface EncodedMessage {
  subject: string;
  data: Uint8Array;
  headers: MsgHdrs;
}

export function encodeMessage(
  message: BrokerMessage,
  subjectPrefix: string,
  source: string,
): EncodedMessage {
  const problem = destinationProblem(message.destination);
  if (problem)
    throw new NatsMessageRejected(
      `destination "${message.destination}" is not a valid NATS subject: ${problem}`,
    );
  const h = natsHeaders();
  try {
    for (const [name, value] of Object.entries(message.headers)) {
      if (name.toLowerCase().startsWith('nats-'))
        throw new NatsMessageRejected(
          `header "${name}" is reserved: Nats-* headers control JetStream and are set by the adapter`,
        );
      if (FIELD_HEADERS.has(name.toLowerCase())) continue;
      h.set(name, value);
    }
    if (!hasHeaderIgnoringCase(h, 'ce-source')) h.set('ce-source', source);
    h.set('ce-specversion', SPECVERSION);
    h.set('ce-id', message.id);
    h.set('ce-type', message.type);
    h.set('ce-time', message.time.toISOString());
    if (message.key !== null) h.set('ce-subject', message.key);
    h.set('content-type', CONTENT_TYPE);
  } catch (error) {
    if (error instanceof NatsMessageRejected) throw error;
    throw new NatsMessageRejected(
      `invalid header: ${error instanceof Error ? error.message : String(error)}`,
      {
        cause: error,
      },
    );
  }
  return {
    subject: subjectPrefix + message.destination,
    data: encoder.encode(JSON.stringify(message.payload)),
    headers: h,
  };
}

/** Rebuilds the delivered message; throws if the body is not JSON (nothing a retry could fix). */
export function decodeMessage(m: JsMsg, subjectPrefix: string): DeliveredMessage {
  const h = m.headers as MsgHdrs | undefined; // typed here: see nats-client.ts
  const headers: Record<string, string> = {};
  for (const name of h?.keys() ?? []) {
    const lower = name.toLowerCase();
    if (FIELD_HEADERS.has(lower) || lower.startsWith('nats-')) continue;
    headers[name] = h?.get(name) ?? '';
  }
  const id = header(h, 'ce-id') ?? header(h, 'Nats-Msg-Id') ?? `${m.info.stream}:${m.seq}`;
  const time = new Date(header(h, 'ce-time') ?? '');
  let payload: JsonValue;
  try {
    payload = m.data.length ? (JSON.parse(decoder.decode(m.data)) as JsonValue) : null;
  } catch (error) {
    throw new Error(`message ${id} on "${m.subject}" has a body that is not JSON`, {
      cause: error,
    });
  }
  return {
    id,
    destination: m.subject.startsWith(subjectPrefix)
      ? m.subject.slice(subjectPrefix.length)
      : m.subject,
    key: header(h, 'ce-subject') ?? null,
    type: header(h, 'ce-type') ?? '',
    payload,
    headers,
    time: Number.isNaN(time.getTime()) ? m.time : time,
    deliveryAttempt: m.info.deliveryCount,
  };
}

/** Why `destination` cannot follow the subject prefix, or undefined when it can. */
export function destinationProblem(destination: string): string | undefined {
  if (!destination) return 'it is empty';
  for (const token of destination.split('.')) {
    if (!token) return 'it has an empty token (leading, trailing or double ".")';
    if (/[\s*>]/.test(token)) return 'it contains whitespace or a wildcard ("*", ">")';
  }
  return undefined;
}

/** The header's value if present (an empty value counts as present), else undefined. */
function header(h: MsgHdrs | undefined, name: string): string | undefined {
  if (!h) return undefined;
  return hasHeader(h, name) ? h.get(name) : undefined;
}

function hasHeader(h: MsgHdrs, name: string): boolean {
  return h.keys().includes(name);
}

function hasHeaderIgnoringCase(h: MsgHdrs, name: string): boolean {
  return h.keys().some((k) => k.toLowerCase() === name);
}
