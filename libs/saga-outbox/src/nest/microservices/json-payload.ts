import type { JsonValue } from '../../core/json';

const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * A Sage message body as the value the outbox was given: every Sage adapter sends
 * `JSON.stringify(payload)`, so the body of a JSON string, number, boolean or null payload is that
 * JSON text, not the value. Bytes are decoded as UTF-8 first. A body that is not valid JSON (a
 * non-Sage producer's plain text) is returned as the text, and invalid UTF-8 as the raw bytes.
 */
export function decodeJsonPayload(body: unknown): JsonValue | Uint8Array | undefined {
  if (body === undefined) return undefined;
  if (body === null) return null;
  let text: string;
  if (typeof body === 'string') text = body;
  else if (body instanceof Uint8Array) {
    try {
      text = decoder.decode(body);
    } catch {
      return body;
    }
  } else return body as JsonValue; // already decoded by the transport (a JSON object or array)
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    return text;
  }
}

/** A header value as text: Kafka / AMQP give Buffers, strings, or arrays of them. */
export function headerText(raw: unknown): string | undefined {
  if (Array.isArray(raw)) return headerText(raw[0]);
  if (raw instanceof Uint8Array) return Buffer.from(raw).toString('utf8');
  if (typeof raw === 'string') return raw;
  return undefined;
}
