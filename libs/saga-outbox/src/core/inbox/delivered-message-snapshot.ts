import type { JsonValue } from '../json';
import type { DeliveredMessage } from '../ports/broker';

/** A delivered message as JSON (`time` as ISO text): what an inbox keeps with a dead letter. */
export function deliveredMessageSnapshot(message: DeliveredMessage): JsonValue {
  return {
    id: message.id,
    destination: message.destination,
    key: message.key,
    type: message.type,
    headers: message.headers,
    payload: message.payload,
    time: message.time instanceof Date ? message.time.toISOString() : String(message.time),
  };
}
