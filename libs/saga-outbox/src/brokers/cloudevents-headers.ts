import type { BrokerMessage } from '../core/ports/broker';

/**
 * BrokerMessage fields ⇄ CloudEvents 1.0 binary-mode headers: the one mapping every broker codec
 * (Kafka, RabbitMQ, NATS) uses. A codec only moves these headers in and out of its transport's
 * shape (Kafka header values, AMQP properties and headers table, NATS MsgHdrs).
 *
 * Out (`toCloudEventHeaders`):
 * - the message's own headers (`traceparent`, Sage's `sage-*`, CloudEvents extensions) travel
 *   unchanged, except the reserved names below, whatever their case: those are derived from the
 *   message's fields and always win;
 * - `ce-specversion` = `1.0`, `ce-id` = id, `ce-type` = type, `ce-time` = time as RFC 3339 UTC with
 *   milliseconds (left out if the Date is invalid), `ce-subject` = key (left out when the key is
 *   null), `content-type` = `application/json` (the body is the JSON payload);
 * - `ce-source` = the message's own `ce-source` header (any case) when it has a non-blank one, else
 *   the adapter's `source` option.
 *
 * In (`fromCloudEventHeaders`):
 * - `headers` = every header as received (CloudEvents attributes included, as the port documents
 *   them); the codec has already removed the transport's own control headers (AMQP `x-death`,
 *   NATS `Nats-*`);
 * - names are matched ignoring case; a blank (empty or whitespace) id or type counts as missing, an
 *   empty key as no key;
 * - id = the transport's own message id (AMQP `message-id`, NATS `Nats-Msg-Id`), else `ce-id`; the
 *   transport's id first so the adapters and the Nest transports (`transportMessageId`) give the
 *   inbox the same id for one message. It is not checked here: inbound-message.ts dead-letters a
 *   message whose id is missing or unusable (no position is ever made up as an id, on any broker);
 * - type = the transport's own type (AMQP `type`), else `ce-type`, else `''`;
 * - key = the transport's own key (Kafka record key), else `ce-subject`, else null;
 * - time = `ce-time` when it is a valid RFC 3339 timestamp, else the transport's time (Kafka record
 *   timestamp, AMQP `timestamp`, JetStream stored time) when valid, else the time of receipt. Never
 *   an Invalid Date, never a throw.
 */

export const CE_SPECVERSION = 'ce-specversion';
export const CE_ID = 'ce-id';
export const CE_TYPE = 'ce-type';
export const CE_SOURCE = 'ce-source';
export const CE_SUBJECT = 'ce-subject';
export const CE_TIME = 'ce-time';
export const CONTENT_TYPE = 'content-type';

export const SPEC_VERSION = '1.0';
export const JSON_CONTENT_TYPE = 'application/json';

/** Headers derived from BrokerMessage fields: a message's own header of one of these names (any case) is dropped. */
export const RESERVED_HEADERS: ReadonlySet<string> = new Set([
  CE_SPECVERSION,
  CE_ID,
  CE_TYPE,
  CE_TIME,
  CE_SUBJECT,
  CONTENT_TYPE,
]);

/** RFC 3339 `date-time` (`T`, `t` or a space between date and time; `Z` or a numeric offset). */
// eslint-disable-next-line security/detect-unsafe-regex -- linear: the only nested quantifier is the optional `(\.\d+)?`, which starts at a "." no other part can match, so no input is matched two ways.
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

export function isReservedHeader(name: string): boolean {
  return RESERVED_HEADERS.has(name.toLowerCase());
}

/** `ce-time` for a Date: RFC 3339 UTC with milliseconds, or undefined for an Invalid Date. */
export function formatCloudEventTime(time: Date): string | undefined {
  return isValidDate(time) ? time.toISOString() : undefined;
}

/** The Date of a `ce-time` value, or undefined when it is missing or not a valid RFC 3339 timestamp. */
export function parseCloudEventTime(text: string | undefined): Date | undefined {
  if (text === undefined || !RFC3339.test(text.trim())) return undefined;
  const time = new Date(text.trim());
  return isValidDate(time) ? time : undefined;
}

export function isValidDate(value: unknown): value is Date {
  return value instanceof Date && !Number.isNaN(value.getTime());
}

/** The binary-mode headers of `message`; `source` is the `ce-source` unless the message has its own. */
export function toCloudEventHeaders(
  message: BrokerMessage,
  source: string,
): Record<string, string> {
  const headers: Record<string, string> = {};
  let ownSource = false;
  for (const [name, value] of Object.entries(message.headers)) {
    if (isReservedHeader(name)) continue;
    if (name.toLowerCase() === CE_SOURCE) {
      if (!nonBlank(value)) continue; // a blank source is no source: the default applies
      ownSource = true;
    }
    headers[name] = value;
  }
  if (!ownSource) headers[CE_SOURCE] = source;
  headers[CE_SPECVERSION] = SPEC_VERSION;
  headers[CE_ID] = message.id;
  headers[CE_TYPE] = message.type;
  const time = formatCloudEventTime(message.time);
  if (time !== undefined) headers[CE_TIME] = time;
  if (message.key !== null) headers[CE_SUBJECT] = message.key;
  headers[CONTENT_TYPE] = JSON_CONTENT_TYPE;
  return headers;
}

/** What a transport carries itself, next to the headers (see the module comment for precedence). */
export interface TransportAttributes {
  /** The transport's own message id (AMQP `message-id`, NATS `Nats-Msg-Id`). */
  id?: unknown;
  /** The transport's own type (AMQP `type` property). */
  type?: unknown;
  /** The transport's own key (Kafka record key). */
  key?: unknown;
  /** When the transport stored or stamped it (Kafka record timestamp, AMQP `timestamp`, JetStream time). */
  time?: Date;
}

/** The DeliveredMessage fields the headers (and the transport's own attributes) give. */
export interface CloudEventFields {
  /**
   * The message id as received, not yet checked: the first non-blank of the transport's id and
   * `ce-id`, else whichever of them was present (blank), else undefined. See messageIdProblem.
   */
  id: unknown;
  type: string;
  key: string | null;
  time: Date;
  headers: Record<string, string>;
}

/** The message fields from received headers and the transport's own attributes. Never throws. */
export function fromCloudEventHeaders(
  headers: Readonly<Record<string, string>>,
  transport: TransportAttributes = {},
): CloudEventFields {
  const ceId = headerValue(headers, CE_ID);
  return {
    id: nonBlank(transport.id) ?? nonBlank(ceId) ?? transport.id ?? ceId,
    type: nonBlank(transport.type) ?? nonBlank(headerValue(headers, CE_TYPE)) ?? '',
    key: nonEmpty(transport.key) ?? nonEmpty(headerValue(headers, CE_SUBJECT)) ?? null,
    time:
      parseCloudEventTime(headerValue(headers, CE_TIME)) ??
      (isValidDate(transport.time) ? transport.time : new Date()),
    headers: { ...headers },
  };
}

/** The value of header `name`: the exact name first, else the first whose name matches ignoring case. */
export function headerValue(
  headers: Readonly<Record<string, string>>,
  name: string,
): string | undefined {
  if (Object.prototype.hasOwnProperty.call(headers, name)) return headers[name];
  const lower = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) if (key.toLowerCase() === lower) return value;
  return undefined;
}

function nonBlank(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value : undefined;
}

function nonEmpty(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}
