/**
 * OpenTelemetry tracing for Sage, built on `@opentelemetry/api` only: without an SDK registered,
 * every call here is a no-op (the API's no-op tracer), apart from passing an incoming
 * `traceparent` on unchanged. The core knows nothing of it: spans come from the typed saga events
 * and from thin wrappers the Nest layer puts around the outbox writer, the relay's broker and the
 * inbox.
 *
 * One trace from producer to consumer: the outbox write span's `traceparent` is stored in the
 * row's headers (W3C Trace Context); the relay's publish span continues it and sends its own
 * `traceparent` in the broker headers; the inbox extracts it, so its handler span (and whatever
 * the handler does) is the publish span's child.
 */
import {
  context,
  isSpanContextValid,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { NewOutboxMessage } from '../../core/outbox/outbox-message';
import type {
  Broker,
  BrokerMessage,
  DeliveredMessage,
  PublishResult,
  SubscribeOptions,
  Subscription,
} from '../../core/ports/broker';
import type { OutboxWriter } from '../../core/ports/outbox-store';
import type { SageTracer } from '../../core/ports/tracer';
import type { SagaEvent } from '../../core/saga/saga-events';
import { errorText } from '../../core/error-text';

export const SAGE_TRACER_NAME = '@sage/saga-outbox';

/** W3C Trace Context, used explicitly so propagation works whatever global propagator is set. */
const w3c = new W3CTraceContextPropagator();

const tracer = () => trace.getTracer(SAGE_TRACER_NAME);

const recordSetter: TextMapSetter<Record<string, string>> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};

/**
 * Reads `traceparent` / `tracestate` from any header shape a transport hands over: a plain record
 * (Sage's DeliveredMessage, AMQP headers), values as Buffers or arrays (kafkajs), or an object
 * with `get(name)` (NATS MsgHdrs).
 */
const anyGetter: TextMapGetter<unknown> = {
  keys: (carrier) => (carrier && typeof carrier === 'object' ? Object.keys(carrier) : []),
  get: (carrier, key) => {
    if (!carrier || typeof carrier !== 'object') return undefined;
    const get = (carrier as { get?: unknown }).get;
    const raw: unknown =
      typeof get === 'function'
        ? (get as (name: string) => unknown).call(carrier, key)
        : (carrier as Record<string, unknown>)[key];
    const text = (v: unknown): string | undefined =>
      typeof v === 'string' ? v || undefined : Buffer.isBuffer(v) ? v.toString('utf8') : undefined;
    return Array.isArray(raw) ? text(raw[0]) : text(raw);
  },
};

/** `headers` plus the `traceparent` (and `tracestate`) of `ctx`; unchanged when ctx has no valid span. */
export function withTraceHeaders(
  ctx: Context,
  headers: Readonly<Record<string, string>>,
): Record<string, string> {
  const out = { ...headers };
  w3c.inject(ctx, out, recordSetter);
  return out;
}

/** The context a message's headers carry (its producer's span as remote parent), on top of `base`. */
export function traceContextFrom(headers: unknown, base: Context = ROOT_CONTEXT): Context {
  return w3c.extract(base, headers, anyGetter);
}

/** The headers of whatever an inbox is handed: a DeliveredMessage or a microservices transport context. */
function headersOf(source: unknown): unknown {
  if (!source || typeof source !== 'object') return undefined;
  const s = source as {
    headers?: unknown;
    getHeaders?: () => unknown;
    getMessage?: () => unknown;
    getDeliveredMessage?: () => unknown;
  };
  // SageBrokerContext: the delivered message's headers (as received, so the producer's traceparent).
  if (typeof s.getDeliveredMessage === 'function')
    return (s.getDeliveredMessage() as { headers?: unknown } | null)?.headers;
  if (typeof s.getHeaders === 'function') return s.getHeaders(); // NatsContext
  if (typeof s.getMessage === 'function') {
    const m = s.getMessage() as { properties?: { headers?: unknown }; headers?: unknown } | null;
    return m?.properties?.headers ?? m?.headers; // RmqContext, KafkaContext
  }
  return s.headers; // DeliveredMessage
}

function fail(span: Span, error: unknown): void {
  span.recordException(error instanceof Error ? error : new Error(String(error)));
  span.setStatus({
    code: SpanStatusCode.ERROR,
    message: errorText(error),
  });
}

/** Runs `fn` in a new active span, ending it with the outcome. */
async function inSpan<T>(
  name: string,
  options: { kind: SpanKind; attributes: Record<string, string | number> },
  parent: Context,
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  return tracer().startActiveSpan(name, options, parent, async (span) => {
    try {
      return await fn(span);
    } catch (error) {
      fail(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}

// -------------------------------------------------------------------------------------------------
// sagas: spans from the engine's typed events
// -------------------------------------------------------------------------------------------------

interface OpenSaga {
  span: Span;
  ctx: Context;
  steps: Map<string, { span: Span; ctx: Context }>;
  compensation?: { span: Span; ctx: Context };
}

/** Open sagas kept at most; beyond it the oldest span is ended (a saga parked for long, or leaked). */
const MAX_OPEN_SAGAS = 10_000;

/**
 * Saga run, step and compensation spans from SagaEvents (subscribe `onSagaEvent` to
 * `SagaEngine.onEvent`). The saga span's parent is the context active when the saga started (the
 * HTTP request that started it, say); steps and the compensation are its children. Outbox writes
 * of a saga find their step's span through `contextFor(sagaId)`.
 */
export class SagaTracing {
  private readonly open = new Map<string, OpenSaga>();

  readonly onSagaEvent = (e: SagaEvent): void => {
    switch (e.type) {
      case 'saga.started':
      case 'saga.resumed': {
        if (this.open.has(e.sagaId)) return;
        const span = tracer().startSpan(
          `saga ${e.saga}`,
          {
            kind: SpanKind.INTERNAL,
            attributes: {
              'sage.saga.name': e.saga,
              'sage.saga.id': e.sagaId,
              'sage.saga.resumed': e.type === 'saga.resumed',
            },
          },
          context.active(),
        );
        this.open.set(e.sagaId, {
          span,
          ctx: trace.setSpan(context.active(), span),
          steps: new Map(),
        });
        this.evictOldest();
        return;
      }
      case 'step.started': {
        const saga = this.open.get(e.sagaId);
        if (!saga) return;
        saga.steps.get(e.step)?.span.end();
        const span = tracer().startSpan(
          `saga step ${e.step}`,
          {
            attributes: {
              'sage.saga.name': e.saga,
              'sage.saga.id': e.sagaId,
              'sage.step.name': e.step,
              'sage.step.attempt': e.attempt,
            },
          },
          saga.ctx,
        );
        saga.steps.set(e.step, { span, ctx: trace.setSpan(saga.ctx, span) });
        return;
      }
      case 'step.completed':
      case 'step.retrying':
      case 'step.failed': {
        const saga = this.open.get(e.sagaId);
        const step = saga?.steps.get(e.step);
        if (!saga || !step) return;
        if (e.type !== 'step.completed') fail(step.span, new Error(e.error));
        step.span.end();
        saga.steps.delete(e.step);
        return;
      }
      case 'saga.compensating': {
        const saga = this.open.get(e.sagaId);
        if (!saga || saga.compensation) return;
        const span = tracer().startSpan(
          'saga compensation',
          {
            attributes: {
              'sage.saga.name': e.saga,
              'sage.saga.id': e.sagaId,
              'sage.reason': e.reason,
            },
          },
          saga.ctx,
        );
        saga.compensation = { span, ctx: trace.setSpan(saga.ctx, span) };
        return;
      }
      case 'compensation.completed':
      case 'compensation.retrying':
      case 'compensation.failed': {
        const span = this.open.get(e.sagaId)?.compensation?.span;
        if (!span) return;
        span.addEvent(e.type, { 'sage.step.name': e.step, 'sage.step.attempt': e.attempt });
        if (e.type === 'compensation.failed') fail(span, new Error(e.error));
        return;
      }
      case 'saga.completed':
      case 'saga.compensated':
      case 'saga.failed':
      case 'saga.interrupted': {
        const saga = this.open.get(e.sagaId);
        if (!saga) return;
        this.open.delete(e.sagaId);
        for (const step of saga.steps.values()) step.span.end();
        saga.compensation?.span.end();
        saga.span.setAttribute('sage.saga.outcome', e.type.slice('saga.'.length));
        if (e.type === 'saga.failed') fail(saga.span, new Error(e.reason));
        saga.span.end();
        return;
      }
      default:
        return;
    }
  };

  /** The innermost open span of a saga (a running step, its compensation, or the saga itself). */
  contextFor(sagaId: string): Context | undefined {
    const saga = this.open.get(sagaId);
    if (!saga) return undefined;
    const steps = [...saga.steps.values()];
    return steps[steps.length - 1]?.ctx ?? saga.compensation?.ctx ?? saga.ctx;
  }

  private evictOldest(): void {
    if (this.open.size <= MAX_OPEN_SAGAS) return;
    const [oldestId, oldest] = this.open.entries().next().value as [string, OpenSaga];
    this.open.delete(oldestId);
    oldest.span.end();
  }
}

/** The process's saga spans: the outbox writer parents a saga's writes on them. */
export const sagaTracing = new SagaTracing();

/**
 * OpenTelemetry spans for Sage, for `SagaOutboxModule.forRoot({ tracing: openTelemetryTracing() })`
 * (or OutboxRelayModule): saga / step / compensation spans from the engine's events, a write span
 * per outbox insert whose `traceparent` is stored with the message, a PRODUCER span per publish and
 * a CONSUMER span per inbox handling, so producer, broker and consumer are one trace. Built on
 * `@opentelemetry/api` only: register an SDK for the spans to be exported.
 */
export function openTelemetryTracing(): SageTracer {
  return {
    onSagaEvent: sagaTracing.onSagaEvent,
    outboxWriter: (writer) => tracedOutboxWriter(writer),
    broker: tracedBroker,
    inboxHandling: withInboxSpan,
  };
}

// -------------------------------------------------------------------------------------------------
// outbox write, relay publish, inbox handling
// -------------------------------------------------------------------------------------------------

/**
 * An OutboxWriter that writes inside a `sage.outbox.write` span and stores that span's
 * `traceparent` in each message's headers (unless the message already has one). The parent is the
 * writing saga step's span when the messages belong to a saga, else the active context.
 */
export function tracedOutboxWriter<Tx>(
  writer: OutboxWriter<Tx>,
  sagas: SagaTracing = sagaTracing,
): OutboxWriter<Tx> {
  return {
    isTransaction: (tx) => writer.isTransaction(tx),
    insert: (tx, messages) => {
      if (!messages.length) return writer.insert(tx, messages);
      const sagaId = messages.find((m) => m.sagaId)?.sagaId;
      const parent = (sagaId && sagas.contextFor(sagaId)) || context.active();
      const first = messages[0]!;
      return inSpan(
        'sage.outbox.write',
        {
          kind: SpanKind.PRODUCER,
          attributes: {
            'messaging.destination.name': first.destination,
            'messaging.batch.message_count': messages.length,
          },
        },
        parent,
        (span) => {
          const ctx = trace.setSpan(parent, span);
          const stamped: NewOutboxMessage[] = messages.map((m) =>
            m.headers.traceparent ? m : { ...m, headers: withTraceHeaders(ctx, m.headers) },
          );
          return writer.insert(tx, stamped);
        },
      );
    },
  };
}

/**
 * A Broker whose publishes run in one PRODUCER span per message (`<destination> publish`),
 * continuing the trace stored with the message and sending the publish span's `traceparent` on.
 * Everything else is passed through.
 */
export function tracedBroker(broker: Broker): Broker {
  const publish = async (
    batch: readonly BrokerMessage[],
    signal?: AbortSignal,
  ): Promise<PublishResult[]> => {
    let newSpans = false;
    const spans = batch.map((m) => {
      const parent = traceContextFrom(m.headers);
      const span = tracer().startSpan(
        `${m.destination} publish`,
        {
          kind: SpanKind.PRODUCER,
          attributes: {
            'messaging.system': broker.name,
            'messaging.operation.type': 'send',
            'messaging.destination.name': m.destination,
            'messaging.message.id': m.id,
            'sage.message.type': m.type,
          },
        },
        parent,
      );
      // Without an SDK the span is the parent's (or an invalid) context: nothing new to send on.
      const own = span.spanContext();
      if (isSpanContextValid(own) && own.spanId !== trace.getSpanContext(parent)?.spanId)
        newSpans = true;
      return span;
    });
    // The relay's hot path: with no SDK, publish the batch as it is (its stored traceparent is
    // what would be injected anyway) instead of copying every message and its headers.
    const traced = newSpans
      ? batch.map((m, i) => ({
          ...m,
          headers: withTraceHeaders(trace.setSpan(ROOT_CONTEXT, spans[i]!), m.headers),
        }))
      : batch;
    try {
      const results = await broker.publish(traced, signal);
      const byId = new Map(results.map((r) => [r.id, r]));
      batch.forEach((m, i) => {
        const r = byId.get(m.id);
        if (r && !r.ok) fail(spans[i]!, new Error(r.error));
      });
      return results;
    } catch (error) {
      for (const span of spans) fail(span, error);
      throw error;
    } finally {
      for (const span of spans) span.end();
    }
  };
  return {
    get name() {
      return broker.name;
    },
    // The relay checks its lease against it: a wrapper must not hide it.
    get publishTimeoutMs() {
      return broker.publishTimeoutMs;
    },
    publish,
    subscribe: (
      destination: string,
      handler: (message: DeliveredMessage) => Promise<void>,
      options?: SubscribeOptions,
    ): Promise<Subscription> => broker.subscribe(destination, handler, options),
    health: () => broker.health(),
    close: () => broker.close(),
  };
}

/**
 * Runs an inbox handler in a CONSUMER span (`<consumer> process`) whose parent is the producer's
 * span from the message headers (`source`: a DeliveredMessage or a transport context), so
 * producer, broker and consumer are one trace; with no `traceparent`, the active context.
 */
export function withInboxSpan<T>(
  consumer: string,
  messageId: string,
  source: unknown,
  fn: () => Promise<T>,
): Promise<T> {
  const parent = traceContextFrom(headersOf(source), context.active());
  return inSpan(
    `${consumer} process`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        'messaging.operation.type': 'process',
        'messaging.consumer.group.name': consumer,
        'messaging.message.id': messageId,
      },
    },
    parent,
    () => fn(),
  );
}
