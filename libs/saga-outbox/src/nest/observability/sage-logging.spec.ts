import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import pino from 'pino';
import { Writable } from 'node:stream';
import type { SageLogger } from '../../core/ports/logger';
import { SageEventLog, traceLogFields } from './sage-logging';

function recordingLogger() {
  const lines: { level: string; message: string; fields: Record<string, unknown> }[] = [];
  const at =
    (level: string) =>
    (message: string, fields: Record<string, unknown> = {}) =>
      lines.push({ level, message, fields });
  const logger: SageLogger = {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  };
  return { logger, lines };
}

describe('SageEventLog', () => {
  it('logs claims at debug, publishes and saga lifecycle at info, with stable event keys and ids, and leaves failures to the default logs', () => {
    const { logger, lines } = recordingLogger();
    const log = new SageEventLog(logger);
    log.onOutboxEvent({ type: 'outbox.claimed', path: 'relay', count: 3, at: 0 });
    log.onOutboxEvent({
      type: 'outbox.published',
      path: 'relay',
      messageId: 'm-1',
      destination: 'orders',
      messageType: 'order.placed',
      publishMs: 2,
      commitToPublishMs: 9,
      at: 0,
    });
    const ids = { sagaId: 's-1', saga: 'order', at: 0 };
    log.onSagaEvent({ type: 'saga.started', ...ids });
    log.onSagaEvent({
      type: 'saga.compensating',
      reason: 'step "charge" failed: declined',
      ...ids,
    });
    // Logged by default (SagaFailureLog, the saga runner): not repeated here.
    log.onSagaEvent({
      type: 'step.retrying',
      ...ids,
      step: 'charge',
      attempt: 1,
      delayMs: 100,
      error: 'card service down',
    });
    log.onSagaEvent({ type: 'step.failed', ...ids, step: 'charge', attempt: 3, error: 'x' });
    log.onSagaEvent({ type: 'compensation.completed', ...ids, step: 'reserve', attempt: 1 });
    log.onSagaEvent({
      type: 'compensation.failed',
      ...ids,
      step: 'reserve',
      attempt: 5,
      error: 'stock service down',
    });
    log.onSagaEvent({ type: 'saga.compensated', ...ids, durationMs: 5 });
    log.onSagaEvent({ type: 'saga.failed', ...ids, reason: 'x', durationMs: 5 });
    log.onSagaEvent({ type: 'saga.completed', ...ids, durationMs: 5 });
    expect(lines.map((l) => [l.level, l.fields['event']])).toEqual([
      ['debug', 'outbox.claimed'],
      ['info', 'outbox.published'],
      ['info', 'saga.started'],
      ['info', 'saga.compensating'],
      ['info', 'saga.completed'],
    ]);
    expect(lines[1]!.fields).toMatchObject({ messageId: 'm-1', destination: 'orders' });
    expect(lines[3]!.message).toBe('saga order s-1 compensating: step "charge" failed: declined');
  });
});

describe('traceLogFields (pino mixin)', () => {
  afterEach(() => {
    trace.disable();
    context.disable();
  });

  it('adds the active span ids to JSON log lines, and nothing without a span', () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(new BasicTracerProvider());
    const out: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        out.push(chunk.toString());
        done();
      },
    });
    const logger = pino({ mixin: traceLogFields }, sink);
    logger.info({ event: 'outside' }, 'no span');
    const span = trace.getTracer('test').startSpan('work');
    context.with(trace.setSpan(context.active(), span), () =>
      logger.info({ event: 'inside', sagaId: 's-1' }, 'in span'),
    );
    span.end();
    const [outside, inside] = out.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(outside).not.toHaveProperty('traceId');
    expect(inside).toMatchObject({
      event: 'inside',
      sagaId: 's-1',
      traceId: span.spanContext().traceId,
      spanId: span.spanContext().spanId,
    });
  });
});
