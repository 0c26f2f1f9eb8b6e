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
  it('logs claims at debug, publishes at info, retries at warn and failures at error, with stable event keys and ids', () => {
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
    log.onSagaEvent({
      type: 'step.retrying',
      sagaId: 's-1',
      saga: 'order',
      step: 'charge',
      attempt: 1,
      delayMs: 100,
      error: 'card service down',
      at: 0,
    });
    log.onSagaEvent({
      type: 'compensation.failed',
      sagaId: 's-1',
      saga: 'order',
      step: 'reserve',
      attempt: 5,
      error: 'stock service down',
      at: 0,
    });
    expect(lines.map((l) => [l.level, l.fields['event']])).toEqual([
      ['debug', 'outbox.claimed'],
      ['info', 'outbox.published'],
      ['warn', 'step.retrying'],
      ['error', 'compensation.failed'],
    ]);
    expect(lines[1]!.fields).toMatchObject({ messageId: 'm-1', destination: 'orders' });
    expect(lines[2]!.fields).toMatchObject({ sagaId: 's-1', step: 'charge' });
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
