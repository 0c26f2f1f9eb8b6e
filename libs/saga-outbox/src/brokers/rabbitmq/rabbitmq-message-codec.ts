import type { Message, Options } from 'amqplib';
import type { BrokerMessage } from '../../core/ports/broker';
import {
  CONTENT_TYPE,
  headerValue,
  isValidDate,
  toCloudEventHeaders,
} from '../cloudevents-headers';
import { inboundMessage, type Inbound } from '../inbound-message';

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
 * The message as it was published, or why it is dead-lettered instead (inbound-message.ts): the
 * same checks as every broker, so a message without an id or with a body that is not JSON ends
 * the same way here as on Kafka and NATS.
 */
export function fromAmqpMessage(raw: Message, maxMessageBytes: number): Inbound {
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
  return inboundMessage({
    destination: raw.fields.routingKey,
    headers,
    transport: {
      id: raw.properties.messageId as unknown,
      type: raw.properties.type as unknown,
      time: typeof timestamp === 'number' ? new Date(timestamp * 1000) : undefined,
    },
    body: raw.content,
    maxMessageBytes,
  });
}

/** A header table value as text: strings, byte strings, numbers and booleans; other types are left out. */
function headerText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}
