import { InvalidOptionsError } from '../errors';
import { assertJsonSerializable, type JsonValue } from '../json';
import type { BrokerMessage } from '../ports/broker';
import { STORABLE_TEXT_FIX, storableTextProblem } from '../text-checks';
import { uuidv7 } from '../uuid';
import { OutboxMessageInvalidError, OutboxMessageTooLargeError } from './outbox-errors';
import type { OutboxStatus } from './outbox-transitions';

/** Default cap on one message (payload + headers, as JSON bytes): 1 MiB. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;

/** What application code hands to `outbox.publish()`. */
export interface OutboxMessageInput {
  /** Topic / exchange / subject the relay publishes to. Required. */
  destination: string;
  /** Event or command type (CloudEvents `type`). Required. */
  type: string;
  /** Any JSON value. */
  payload: JsonValue;
  /**
   * Ordering key (aggregate id): messages with the same key are published in commit order and one
   * at a time; a message whose publish keeps failing holds back only its own key. Null: no ordering.
   */
  key?: string | null;
  /** Extra transport headers (CloudEvents extensions, `traceparent`); string values only. */
  headers?: Record<string, string>;
  /** The saga this message belongs to, if any (for inspection and dead-letter filters). */
  sagaId?: string | null;
  /** Message id; default a fresh UUIDv7. It is the broker-side message id everywhere (dedup). */
  id?: string;
}

/** A validated message, ready to insert. */
export interface NewOutboxMessage {
  id: string;
  destination: string;
  type: string;
  key: string | null;
  payload: JsonValue;
  headers: Record<string, string>;
  sagaId: string | null;
}

/** A stored message as the relay and the dead-letter API see it. */
export interface OutboxMessage extends NewOutboxMessage {
  status: OutboxStatus;
  attempts: number;
  nextAttemptAt: Date;
  createdAt: Date;
  sentAt: Date | null;
  lastError: string | null;
}

/** A message claimed by a relay: what it publishes, plus how many attempts went before. */
export interface ClaimedOutboxMessage extends NewOutboxMessage {
  attempts: number;
  createdAt: Date;
}

/** What the relay and the optimistic sender hand the broker for a claimed message. */
export function toBrokerMessage(m: ClaimedOutboxMessage): BrokerMessage {
  return {
    id: m.id,
    destination: m.destination,
    key: m.key,
    type: m.type,
    payload: m.payload,
    headers: m.headers,
    time: m.createdAt,
  };
}

export interface OutboxValidationOptions {
  /** Max bytes of payload + headers as JSON (default 1 MiB). */
  maxMessageBytes?: number;
  /** Id generator (default UUIDv7). */
  newId?: () => string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_NAME_LENGTH = 255;
const encoder = new TextEncoder();

/** A message's size as `maxMessageBytes` counts it: payload and headers, as JSON bytes. */
export function outboxMessageBytes(
  payload: JsonValue,
  headers: Readonly<Record<string, string>>,
): number {
  return (
    encoder.encode(JSON.stringify(payload)).byteLength +
    encoder.encode(JSON.stringify(headers)).byteLength
  );
}

/**
 * Validates every message before anything is written (all or nothing) and fills defaults.
 * Throws OutboxMessageInvalidError, OutboxMessageTooLargeError or NotSerializableError. Every text
 * that reaches PostgreSQL (destination, type, key, header names and values) is checked for what it
 * cannot store (NUL, unpaired surrogates): refused here, it never aborts the caller's transaction.
 */
export function prepareOutboxMessages(
  inputs: readonly OutboxMessageInput[],
  options: OutboxValidationOptions = {},
): NewOutboxMessage[] {
  const limit = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new InvalidOptionsError(
      'outbox.maxMessageBytes',
      `must be an integer >= 1, got ${String(limit)}`,
    );
  }
  const newId = options.newId ?? (() => uuidv7());
  return inputs.map((input, index) => {
    if (typeof input !== 'object' || input === null) {
      throw new OutboxMessageInvalidError(index, 'message', 'must be an object');
    }
    /** `subject` says what of `field` is checked, when not the field itself (a header's name). */
    const storable = (field: string, value: string, subject = ''): void => {
      const problem = storableTextProblem(value);
      if (problem)
        throw new OutboxMessageInvalidError(
          index,
          field,
          `${subject}${problem}: ${STORABLE_TEXT_FIX}`,
        );
    };
    const name = (field: 'destination' | 'type'): string => {
      const value = input[field] as unknown;
      if (typeof value !== 'string' || value.trim() === '') {
        throw new OutboxMessageInvalidError(index, field, 'is required (a non-empty string)');
      }
      if (value.length > MAX_NAME_LENGTH) {
        throw new OutboxMessageInvalidError(
          index,
          field,
          `is longer than ${MAX_NAME_LENGTH} characters`,
        );
      }
      storable(field, value);
      return value;
    };
    const destination = name('destination');
    const type = name('type');
    const key = input.key ?? null;
    if (key !== null && (typeof key !== 'string' || key === '')) {
      throw new OutboxMessageInvalidError(index, 'key', 'must be a non-empty string or null');
    }
    if (key !== null) storable('key', key);
    const headers = input.headers ?? {};
    if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) {
      throw new OutboxMessageInvalidError(index, 'headers', 'must be an object of string values');
    }
    for (const [name, value] of Object.entries(headers)) {
      // JSON-quoted: the name may hold the very character being reported.
      storable('headers', name, `name ${JSON.stringify(name)} `);
      if (typeof value !== 'string') {
        throw new OutboxMessageInvalidError(
          index,
          `headers.${name}`,
          `must be a string, got ${typeof value}`,
        );
      }
      storable(`headers.${name}`, value);
    }
    const sagaId = input.sagaId ?? null;
    if (sagaId !== null && (typeof sagaId !== 'string' || !UUID.test(sagaId))) {
      throw new OutboxMessageInvalidError(index, 'sagaId', 'must be a UUID or null');
    }
    const id = input.id ?? newId();
    if (typeof id !== 'string' || !UUID.test(id)) {
      throw new OutboxMessageInvalidError(index, 'id', 'must be a UUID');
    }
    assertJsonSerializable(input.payload, `Outbox message #${index} (type "${type}") payload`);
    const size = outboxMessageBytes(input.payload, headers);
    if (size > limit) throw new OutboxMessageTooLargeError(index, type, size, limit);
    return { id, destination, type, key, payload: input.payload, headers: { ...headers }, sagaId };
  });
}
