import type { Message, Options } from 'amqplib';
import type { JsonValue } from '../../core/json';
import type { BrokerMessage } from '../../core/ports/broker';
import {
  CONTENT_TYPE,
  fromCloudEventHeaders,
  headerValue,
  isValidDate,
  toCloudEventHeaders,
} from '../cloudevents-headers';

/**
 * BrokerMessage ⇄ AMQP 0-9-1 message. The CloudEvents headers (cloudevents-headers.ts) go in the
 * headers table, except `content-type`, which is the AMQP `content-type` property (as the
 * CloudEvents AMQP binding maps `datacontenttype`). The id, type and time are also the AMQP
 * `message-id`, `type` and `timestamp` (whole seconds) properties, so tools and other consumers
 * that read only AMQP properties see them; on the way in those properties are the transport's own
 * attributes (see the shared rule). The body is the JSON payload.
 */

/** Headers the broker adds on delivery; not part of the message as published. */
const BROKER_HEADERS = new Set([
  'x-delivery-count',
  'x-death',
  'x-first-death-exchange',
  'x-first-death-queue',
  'x-first-death-reason',
  'x-last-death-exchange',
  'x-last-death-queue',
  'x-last-death-reason',
]);

export interface AmqpMessage {
  content: Buffer;
  /** The message properties; the publisher adds its delivery options (persistent, mandatory). */
  properties: Options.Publish;
}

/** Throws if the payload cannot be serialised (nothing a retry could fix). */
export function toAmqpMessage(message: BrokerMessage, source: string): AmqpMessage {
  const content = Buffer.from(JSON.stringify(message.payload));
  const { [CONTENT_TYPE]: contentType, ...headers } = toCloudEventHeaders(message, source);
  const properties: Options.Publish = {
    messageId: message.id,
    type: message.type,
    contentType,
    contentEncoding: 'utf-8',
    headers,
  };
  if (isValidDate(message.time)) properties.timestamp = Math.floor(message.time.getTime() / 1000);
  return { content, properties };
}

/**
 * The message as it was published, or undefined when it is not a Sage message: no id at all
 * (neither `message-id` nor `ce-id`) or a body that is not JSON.
 */
export function fromAmqpMessage(raw: Message): BrokerMessage | undefined {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw.properties.headers ?? {})) {
    if (BROKER_HEADERS.has(name)) continue;
    const text = headerText(value);
    if (text !== undefined) headers[name] = text;
  }
  const contentType = raw.properties.contentType as unknown;
  if (typeof contentType === 'string' && headerValue(headers, CONTENT_TYPE) === undefined)
    headers[CONTENT_TYPE] = contentType;
  const timestamp = raw.properties.timestamp as unknown;
  const fields = fromCloudEventHeaders(headers, {
    id: raw.properties.messageId as unknown,
    type: raw.properties.type as unknown,
    time: typeof timestamp === 'number' ? new Date(timestamp * 1000) : undefined,
  });
  if (!fields) return undefined;
  let payload: JsonValue;
  try {
    payload = JSON.parse(raw.content.toString('utf8')) as JsonValue;
  } catch {
    return undefined;
  }
  return { ...fields, destination: raw.fields.routingKey, payload };
}

/** A header table value as text: strings, byte strings, numbers and booleans; other types are left out. */
function headerText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}
