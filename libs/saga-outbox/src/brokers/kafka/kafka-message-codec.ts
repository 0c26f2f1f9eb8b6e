import type { IHeaders, KafkaMessage, Message } from 'kafkajs';
import type { BrokerMessage } from '../../core/ports/broker';
import { toCloudEventHeaders } from '../cloudevents-headers';
import { inboundMessage, type Inbound } from '../inbound-message';

/**
 * BrokerMessage ⇄ Kafka record. The CloudEvents headers (cloudevents-headers.ts) are the record's
 * headers, as strings; the key is the record key (so the partition), the JSON payload the value.
 * On the way in, header values arrive as Buffers (or strings, or arrays of either for a repeated
 * name, joined with `,`); the record key and timestamp are the transport's own key and time. A
 * tombstone (null value) is an empty body: dead-lettered like every other undecodable body.
 */

export function toKafkaRecord(message: BrokerMessage, source: string): Message {
  const headers: IHeaders = toCloudEventHeaders(message, source);
  return { key: message.key, value: JSON.stringify(message.payload), headers };
}

/**
 * The record as the handler gets it, or why it is dead-lettered instead (inbound-message.ts). Its
 * position, `topic/partition/offset`, is where the dead letter says it came from; it is never made
 * up as the message id.
 */
export function fromKafkaRecord(
  topic: string,
  record: KafkaMessage,
  maxMessageBytes: number,
): Inbound {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(record.headers ?? {})) {
    const text = headerText(value);
    if (text !== undefined) headers[name] = text;
  }
  return inboundMessage({
    destination: topic,
    headers,
    transport: { key: record.key?.toString('utf8'), time: new Date(Number(record.timestamp)) },
    body: record.value,
    maxMessageBytes,
  });
}

function headerText(value: IHeaders[string]): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.map(String).join(',') : String(value);
}
