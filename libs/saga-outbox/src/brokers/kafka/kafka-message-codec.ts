import type { IHeaders, KafkaMessage, Message } from 'kafkajs';
import type { JsonValue } from '../../core/json';
import type { BrokerMessage, DeliveredMessage } from '../../core/ports/broker';
import { fromCloudEventHeaders, toCloudEventHeaders } from '../cloudevents-headers';

/**
 * BrokerMessage ⇄ Kafka record. The CloudEvents headers (cloudevents-headers.ts) are the record's
 * headers, as strings; the key is the record key (so the partition), the JSON payload the value.
 * On the way in, header values arrive as Buffers (or strings, or arrays of either for a repeated
 * name, joined with `,`); the record key and timestamp are the transport's own key and time; a
 * record without `ce-id` (another producer) gets its position, `topic/partition/offset`, as id
 * (offsets are per partition).
 */

export function toKafkaRecord(message: BrokerMessage, source: string): Message {
  const headers: IHeaders = toCloudEventHeaders(message, source);
  return { key: message.key, value: JSON.stringify(message.payload), headers };
}

export function fromKafkaRecord(
  topic: string,
  partition: number,
  record: KafkaMessage,
  deliveryAttempt: number,
): DeliveredMessage {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(record.headers ?? {})) {
    const text = headerText(value);
    if (text !== undefined) headers[name] = text;
  }
  const fields = fromCloudEventHeaders(headers, {
    key: record.key?.toString('utf8'),
    time: new Date(Number(record.timestamp)),
    position: `${topic}/${partition}/${record.offset}`,
  });
  return {
    ...fields,
    destination: topic,
    payload: parsePayload(record.value),
    deliveryAttempt,
  };
}

function headerText(value: IHeaders[string]): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.map(String).join(',') : String(value);
}

/** JSON payloads come back as values; a non-JSON value (another producer) as its text; a tombstone as null. */
function parsePayload(value: Buffer | null): JsonValue {
  if (value === null) return null;
  const text = value.toString('utf8');
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    return text;
  }
}
