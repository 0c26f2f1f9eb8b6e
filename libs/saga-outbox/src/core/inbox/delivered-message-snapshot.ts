import { jsonDepthExceeds, MAX_JSON_DEPTH, type JsonValue } from '../json';
import type { DeliveredMessage } from '../ports/broker';

/** The largest payload (as JSON text) a dead letter's snapshot keeps; a larger one is replaced by a marker. */
export const MAX_SNAPSHOT_PAYLOAD_CHARS = 64 * 1024;
/** Headers kept in a snapshot, and the longest header value kept. */
const MAX_SNAPSHOT_HEADERS = 64;
const MAX_SNAPSHOT_HEADER_CHARS = 1024;

/** The key of the marker that stands for what a snapshot left out. */
export const SNAPSHOT_TRUNCATED = '@sage.truncated';

/**
 * A delivered message as JSON (`time` as ISO text): what an inbox keeps with a dead letter. Built
 * defensively, because a dead letter is exactly the kind of message that may be odd: it never
 * throws and never walks untrusted depth on the call stack. An Invalid Date becomes null; at most
 * 64 headers of at most 1,024 characters each are kept; a payload nested deeper than
 * MAX_JSON_DEPTH or longer than 64 KiB as JSON is replaced by
 * `{ "@sage.truncated": true, "reason": …, "chars": … }`.
 */
export function deliveredMessageSnapshot(message: DeliveredMessage): JsonValue {
  return {
    id: text(message.id),
    destination: text(message.destination),
    key: message.key === null ? null : text(message.key),
    type: text(message.type),
    headers: headersSnapshot(message.headers),
    payload: payloadSnapshot(message.payload),
    time: timeSnapshot(message.time),
  };
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : String(value);
}

function timeSnapshot(time: unknown): string | null {
  return time instanceof Date && !Number.isNaN(time.getTime()) ? time.toISOString() : null;
}

function headersSnapshot(headers: unknown): JsonValue {
  const out: Record<string, JsonValue> = {};
  if (headers === null || typeof headers !== 'object') return out;
  const entries = Object.entries(headers as Record<string, unknown>);
  for (const [name, value] of entries.slice(0, MAX_SNAPSHOT_HEADERS)) {
    const v = text(value);
    Object.defineProperty(out, name.slice(0, MAX_SNAPSHOT_HEADER_CHARS), {
      value: v.length > MAX_SNAPSHOT_HEADER_CHARS ? `${v.slice(0, MAX_SNAPSHOT_HEADER_CHARS)}…` : v,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  if (entries.length > MAX_SNAPSHOT_HEADERS)
    out[SNAPSHOT_TRUNCATED] = `${entries.length - MAX_SNAPSHOT_HEADERS} more headers left out`;
  return out;
}

function payloadSnapshot(payload: unknown): JsonValue {
  if (jsonDepthExceeds(payload, MAX_JSON_DEPTH))
    return truncated(`nested deeper than ${MAX_JSON_DEPTH} levels`, null);
  let json: string | undefined;
  try {
    json = JSON.stringify(payload);
  } catch {
    return truncated('not JSON-serialisable', null);
  }
  if (json === undefined) return null;
  if (json.length > MAX_SNAPSHOT_PAYLOAD_CHARS)
    return truncated(`over ${MAX_SNAPSHOT_PAYLOAD_CHARS} characters as JSON`, json.length);
  return JSON.parse(json) as JsonValue;
}

function truncated(reason: string, chars: number | null): JsonValue {
  return { [SNAPSHOT_TRUNCATED]: true, reason, chars };
}
