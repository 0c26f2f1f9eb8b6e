/**
 * The producer's message id, read from a `@nestjs/microservices` transport context (`@Ctx()`),
 * duck-typed so this library does not depend on `@nestjs/microservices` or any broker client:
 *
 * - Kafka (`KafkaContext`): header `ce-id` (Sage's Kafka adapter) or `ce_id` (CloudEvents Kafka binding);
 * - RabbitMQ (`RmqContext`): the AMQP `message-id` property, else header `cloudEvents:id`,
 *   `cloudEvents_id`, `ce_id` or `ce-id`;
 * - NATS (`NatsContext`): header `Nats-Msg-Id`, else `ce-id` / `ce_id`;
 * - a Sage `DeliveredMessage` (or anything with a string `id`): its `id`.
 *
 * Sage's outbox sends its row id in all of these. Returns undefined when none is found (the caller
 * then refuses the message: without a stable id a redelivery cannot be recognised).
 */
export function transportMessageId(context: unknown): string | undefined {
  if (typeof context === 'string') return nonEmpty(context);
  if (typeof context !== 'object' || context === null) return undefined;
  const ctx = context as {
    getHeaders?: () => unknown;
    getMessage?: () => unknown;
    id?: unknown;
  };
  if (typeof ctx.getHeaders === 'function') {
    // NatsContext: getHeaders() → MsgHdrs (get(name) → string, '' when absent) or undefined.
    const headers = ctx.getHeaders();
    return firstOf(headers, ['Nats-Msg-Id', 'ce-id', 'ce_id']);
  }
  if (typeof ctx.getMessage === 'function') {
    const message = ctx.getMessage() as {
      properties?: { messageId?: unknown; headers?: unknown };
      headers?: unknown;
    } | null;
    if (message && typeof message === 'object' && message.properties) {
      // RmqContext: an amqplib ConsumeMessage.
      return (
        nonEmpty(message.properties.messageId) ??
        firstOf(message.properties.headers, ['cloudEvents:id', 'cloudEvents_id', 'ce_id', 'ce-id'])
      );
    }
    // KafkaContext: a kafkajs KafkaMessage; header values are Buffers (or strings, or arrays).
    return firstOf(message?.headers, ['ce-id', 'ce_id']);
  }
  return nonEmpty(ctx.id);
}

/**
 * Header `name` of the message in a Kafka, RabbitMQ or NATS transport context (as
 * transportMessageId reads them), or undefined: absent, or `context` is not one of those.
 */
export function transportHeader(context: unknown, name: string): string | undefined {
  if (typeof context !== 'object' || context === null) return undefined;
  const ctx = context as { getHeaders?: () => unknown; getMessage?: () => unknown };
  if (typeof ctx.getHeaders === 'function') return firstOf(ctx.getHeaders(), [name]);
  if (typeof ctx.getMessage !== 'function') return undefined;
  const message = ctx.getMessage() as {
    properties?: { headers?: unknown };
    headers?: unknown;
  } | null;
  if (!message || typeof message !== 'object') return undefined;
  return firstOf(message.properties ? message.properties.headers : message.headers, [name]);
}

function firstOf(headers: unknown, names: readonly string[]): string | undefined {
  if (typeof headers !== 'object' || headers === null) return undefined;
  const get = (headers as { get?: unknown }).get;
  for (const name of names) {
    const raw: unknown =
      typeof get === 'function'
        ? (get as (name: string) => unknown).call(headers, name)
        : (headers as Record<string, unknown>)[name];
    const value = headerText(raw);
    if (value !== undefined) return value;
  }
  return undefined;
}

function headerText(raw: unknown): string | undefined {
  if (Array.isArray(raw)) return headerText(raw[0]);
  if (Buffer.isBuffer(raw)) return nonEmpty(raw.toString('utf8'));
  if (raw instanceof Uint8Array) return nonEmpty(Buffer.from(raw).toString('utf8'));
  return nonEmpty(raw);
}

function nonEmpty(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value : undefined;
}
