import { Injectable, Module, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type * as OtelApi from '@opentelemetry/api';
import type { Params } from 'nestjs-pino';
import type { DestinationStream } from 'pino';
import type { Options as PinoHttpOptions } from 'pino-http';
import type { InboxEvent } from '../../core/inbox/inbox-events';
import type { OutboxEvent } from '../../core/outbox/outbox-events';
import type { SageLogger } from '../../core/ports/logger';
import type { SagaEvent } from '../../core/saga/saga-events';
import { NestSageLogger } from '../nest-sage-logger';
import { findSageParts } from './sage-sources';

/** `@opentelemetry/api` when the app has it installed; null (no trace fields) when it has not. */
let otelApi: typeof OtelApi | null | undefined;
function openTelemetryApi(): typeof OtelApi | null {
  if (otelApi === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- optional peer, loaded on first log line
      otelApi = require('@opentelemetry/api') as typeof OtelApi;
    } catch {
      otelApi = null;
    }
  }
  return otelApi;
}

/**
 * `traceId` / `spanId` of the active OpenTelemetry span, for pino's `mixin`: every log line
 * written inside a traced request, saga step or inbox handler carries them. Empty without an SDK
 * (or without `@opentelemetry/api` installed).
 */
export function traceLogFields(): { traceId?: string; spanId?: string } {
  const span = openTelemetryApi()?.trace.getActiveSpan();
  if (!span) return {};
  const { traceId, spanId, traceFlags } = span.spanContext();
  if (!traceFlags && traceId === '00000000000000000000000000000000') return {};
  return { traceId, spanId };
}

/**
 * Headers whose values never reach a log line: credentials and session tokens, request and
 * response side. `sagePinoParams` adds them to pino's `redact` paths.
 */
export const SAGE_REDACTED_HEADERS: readonly string[] = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-api-key',
];

/** Options of `sagePinoParams`. */
export interface SagePinoOptions {
  /** `service` field on every line. */
  service: string;
  /** Pino level. Default `LOG_LEVEL`, else `info`. */
  level?: string;
  /**
   * More pino redact paths, on top of the credential headers (SAGE_REDACTED_HEADERS), e.g.
   * `['req.headers["x-session"]', 'customer.email']`. The values are written as `[redacted]`.
   */
  redact?: readonly string[];
  /** Where the lines go (a pino destination stream). Default stdout. */
  destination?: DestinationStream;
}

/**
 * nestjs-pino options for a Sage service: JSON lines with `service`, `traceId` / `spanId` on every
 * line, one line per request (`request completed`, with method, url, status and duration; probe
 * endpoints not request-logged), and the credential headers (`authorization`, `cookie`,
 * `set-cookie`, `x-api-key`, `proxy-authorization`) and `options.redact` paths written as
 * `[redacted]`. Use with `LoggerModule.forRoot(sagePinoParams(...))` and
 * `app.useLogger(app.get(Logger))`.
 */
export function sagePinoParams(options: SagePinoOptions): Params {
  const headerPaths = SAGE_REDACTED_HEADERS.flatMap((name) => [
    `req.headers["${name}"]`,
    `res.headers["${name}"]`,
  ]);
  const pinoOptions: PinoHttpOptions = {
    level: options.level ?? process.env.LOG_LEVEL ?? 'info',
    base: { service: options.service },
    mixin: traceLogFields,
    redact: { paths: [...headerPaths, ...(options.redact ?? [])], censor: '[redacted]' },
    autoLogging: {
      ignore: (req) => /^\/(health|metrics)(\/|$|\?)/.test(req.url ?? ''),
    },
  };
  return {
    pinoHttp: options.destination ? [pinoOptions, options.destination] : pinoOptions,
  };
}

/**
 * Logs the lifecycle events Sage does not log by itself, with stable `event` keys and the ids
 * operators search by: debug on claims, step starts and inbox messages, info on publishes and saga
 * starts, compensations begun and completions, warn when an optimistic publish falls back to the
 * relay. What needs attention is logged without this, once, by the core and by SagaOutboxModule
 * (SagaFailureLog): step retries and failures, compensations, compensated and failed sagas, relay
 * retries and dead letters, inbox failures and dead letters. This repeats none of them.
 */
export class SageEventLog {
  constructor(private readonly logger: SageLogger) {}

  readonly onOutboxEvent = (e: OutboxEvent): void => {
    switch (e.type) {
      case 'outbox.claimed':
        this.logger.debug('outbox messages claimed', {
          event: 'outbox.claimed',
          path: e.path,
          count: e.count,
        });
        return;
      case 'outbox.published':
        this.logger.info('outbox message published', {
          event: 'outbox.published',
          path: e.path,
          messageId: e.messageId,
          destination: e.destination,
          type: e.messageType,
          publishMs: e.publishMs,
          commitToPublishMs: e.commitToPublishMs,
        });
        return;
      case 'outbox.failed':
        // The relay logs its own failures (outbox.message.retry / .dead_lettered); the optimistic
        // path leaves the row to the relay, so a warning is enough.
        if (e.path !== 'optimistic') return;
        this.logger.warn('optimistic publish failed; the relay will publish the message', {
          event: 'outbox.optimistic.failed',
          messageId: e.messageId,
          destination: e.destination,
          type: e.messageType,
          reason: e.reason,
          error: e.error,
        });
        return;
      default:
        return;
    }
  };

  readonly onSagaEvent = (e: SagaEvent): void => {
    const ids = { sagaId: e.sagaId, saga: e.saga };
    switch (e.type) {
      case 'saga.started':
        this.logger.info(`saga ${e.saga} ${e.sagaId} started`, { event: e.type, ...ids });
        return;
      case 'step.started':
        this.logger.debug(
          `saga ${e.saga} ${e.sagaId}: step "${e.step}" attempt ${e.attempt} started`,
          {
            event: e.type,
            ...ids,
            step: e.step,
            attempt: e.attempt,
          },
        );
        return;
      case 'saga.compensating':
        // Info: the step failure that started it is logged at error (SagaFailureLog).
        this.logger.info(`saga ${e.saga} ${e.sagaId} compensating: ${e.reason}`, {
          event: e.type,
          ...ids,
          reason: e.reason,
        });
        return;
      case 'saga.completed':
        this.logger.info(`saga ${e.saga} ${e.sagaId} completed`, {
          event: e.type,
          ...ids,
          durationMs: e.durationMs,
        });
        return;
      default:
        return;
    }
  };

  readonly onInboxEvent = (e: InboxEvent): void => {
    if (e.type !== 'inbox.processed') return;
    this.logger.debug('inbox message processed', {
      event: e.type,
      consumer: e.consumer,
      messageId: e.messageId,
      attempt: e.attempt,
      durationMs: e.durationMs,
    });
  };
}

/** Subscribes SageEventLog to whatever Sage runs in this application. */
@Injectable()
export class SageEventLogService implements OnModuleInit, OnApplicationShutdown {
  readonly log = new SageEventLog(new NestSageLogger('Sage'));
  private readonly unsubscribe: (() => void)[] = [];

  constructor(private readonly moduleRef: ModuleRef) {}

  onModuleInit(): void {
    const { engine, inbox, outbox } = findSageParts(this.moduleRef);
    if (engine) this.unsubscribe.push(engine.onEvent(this.log.onSagaEvent));
    if (inbox) this.unsubscribe.push(inbox.onEvent(this.log.onInboxEvent));
    if (outbox) this.unsubscribe.push(outbox.onEvent(this.log.onOutboxEvent));
  }

  /** Listens until the app has shut down: what is drained at shutdown is still logged. */
  onApplicationShutdown(): void {
    for (const off of this.unsubscribe.splice(0)) off();
  }
}

/**
 * Info / debug lifecycle logs for Sage (see SageEventLog); warnings and errors need no module.
 * Pair with nestjs-pino: `sagePinoParams`.
 */
@Module({ providers: [SageEventLogService] })
export class SageEventLogModule {}
