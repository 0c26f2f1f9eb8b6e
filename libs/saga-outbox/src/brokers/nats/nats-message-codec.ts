import type { JsMsg } from '@nats-io/jetstream';
import { errorText } from '../../core/error-text';
import type { BrokerMessage } from '../../core/ports/broker';
import { toCloudEventHeaders } from '../cloudevents-headers';
import { derivedMessageId } from '../../core/message-id';
import { inboundMessage, type Inbound } from '../inbound-message';
import { headers as natsHeaders, type MsgHdrs } from './nats-client';

/**
 * BrokerMessage ⇄ NATS message. The CloudEvents headers (cloudevents-headers.ts) are the message's
 * headers, the JSON payload its body. `Nats-*` headers are refused on the way out: they steer
 * JetStream itself (`Nats-Msg-Id`, `Nats-Expected-*`, `Nats-Rollup` would purge the subject); on
 * the way in they are left out of `headers`, and `Nats-Msg-Id` (which the broker sets to the
 * outbox id) is the transport's own id. A repeated header's values are joined with `,`; the
 * JetStream stored time is the transport's time, `stream:sequence` its position (named in a dead
 * letter, never used as an id).
 */

const NATS_HEADER = /^nats-/i;
const MSG_ID = 'Nats-Msg-Id';
const encoder = new TextEncoder();

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
  const reserved = Object.keys(message.headers).find((name) => NATS_HEADER.test(name));
  if (reserved !== undefined)
    throw new NatsMessageRejected(
      `header "${reserved}" is reserved: Nats-* headers control JetStream and are set by the adapter`,
    );
  const h = natsHeaders();
  try {
    for (const [name, value] of Object.entries(toCloudEventHeaders(message, source)))
      h.set(name, value);
  } catch (error) {
    throw new NatsMessageRejected(`invalid header: ${errorText(error)}`, { cause: error });
  }
  return {
    subject: subjectPrefix + message.destination,
    data: encoder.encode(JSON.stringify(message.payload)),
    headers: h,
  };
}

/**
 * The delivered message as the handler gets it, or why it is dead-lettered instead
 * (inbound-message.ts). Its position, `stream:sequence`, is never made up as the id.
 */
/** What decoding reads of a delivery (a JsMsg, or a message read from the stream: see fromStored). */
export type NatsInboundMessage = Pick<JsMsg, 'headers' | 'subject' | 'seq' | 'data' | 'time'>;

export function decodeMessage(
  m: NatsInboundMessage,
  subjectPrefix: string,
  maxMessageBytes: number,
): Inbound {
  let h: MsgHdrs | undefined;
  try {
    h = m.headers as MsgHdrs | undefined; // typed here: see nats-client.ts; decoded on first access
  } catch (error) {
    // The client refuses the header block (e.g. a name with a space, sent by a bare-protocol
    // producer): nothing can be read from it, not even the id.
    return {
      ok: false,
      poison: {
        reason: 'bad-headers',
        detail: `the NATS client cannot decode the headers: ${errorText(error)}`,
        messageId: derivedMessageId(undefined, () =>
          Buffer.concat([Buffer.from(`${m.subject}\n${m.seq}\n`), m.data]),
        ),
      },
    };
  }
  const headers: Record<string, string> = {};
  let msgId: string | undefined;
  for (const name of h?.keys() ?? []) {
    const value = h?.values(name).join(',') ?? '';
    if (name.toLowerCase() === MSG_ID.toLowerCase()) msgId ??= value;
    if (!NATS_HEADER.test(name)) headers[name] = value;
  }
  return inboundMessage({
    destination: destinationOf(m.subject, subjectPrefix),
    headers,
    transport: { id: msgId, time: m.time },
    body: m.data,
    maxMessageBytes,
  });
}

/** The destination of a subject: the subject without the prefix. */
export function destinationOf(subject: string, subjectPrefix: string): string {
  return subject.startsWith(subjectPrefix) ? subject.slice(subjectPrefix.length) : subject;
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
