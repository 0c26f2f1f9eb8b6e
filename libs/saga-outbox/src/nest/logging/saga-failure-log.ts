import { Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { SageLogger } from '../../core/ports/logger';
import { SagaEngine } from '../../core/saga/saga-engine';
import type { SagaEvent } from '../../core/saga/saga-events';
import { NestSageLogger } from '../nest-sage-logger';

/**
 * The saga events an operator must hear of without asking, logged by every app that imports
 * SagaOutboxModule (no extra module): a failed attempt that will be retried (warn), a step that
 * failed for good (error), a compensated step (warn), a compensation attempt retried (warn) or
 * failed for good (error). Each line names the saga, its id and the step and quotes the error;
 * never the saga's input or a step's result (personal data). The saga's own end is logged by the
 * core, once, with its reason: `saga … compensated after …` (warn), `saga … failed: …` (error).
 * SageEventLogModule adds the info / debug lifecycle lines and repeats none of these.
 */
export class SagaFailureLog {
  constructor(private readonly logger: SageLogger) {}

  readonly onSagaEvent = (e: SagaEvent): void => {
    const saga = `saga ${e.saga} ${e.sagaId}`;
    const ids = { sagaId: e.sagaId, saga: e.saga };
    switch (e.type) {
      case 'step.retrying':
        this.logger.warn(
          `${saga}: step "${e.step}" attempt ${e.attempt} failed, retrying in ${e.delayMs} ms: ${e.error}`,
          {
            ...ids,
            step: e.step,
            attempt: e.attempt,
            retryInMs: e.delayMs,
            error: e.error,
            event: e.type,
          },
        );
        return;
      case 'step.failed':
        this.logger.error(
          `${saga}: step "${e.step}" failed for good (attempt ${e.attempt}, no retry left): ${e.error}`,
          { ...ids, step: e.step, attempt: e.attempt, error: e.error, event: e.type },
        );
        return;
      case 'compensation.completed':
        this.logger.warn(`${saga}: step "${e.step}" compensated`, {
          ...ids,
          step: e.step,
          attempt: e.attempt,
          event: e.type,
        });
        return;
      case 'compensation.retrying':
        this.logger.warn(
          `${saga}: compensation of step "${e.step}" attempt ${e.attempt} failed, retrying in ${e.delayMs} ms: ${e.error}`,
          {
            ...ids,
            step: e.step,
            attempt: e.attempt,
            retryInMs: e.delayMs,
            error: e.error,
            event: e.type,
          },
        );
        return;
      case 'compensation.failed':
        this.logger.error(
          `${saga}: compensation of step "${e.step}" failed for good (attempt ${e.attempt}): ${e.error}`,
          { ...ids, step: e.step, attempt: e.attempt, error: e.error, event: e.type },
        );
        return;
      default:
        return;
    }
  };
}

/**
 * Subscribes SagaFailureLog to the application's saga engine; registered by SagaOutboxModule. It
 * listens until the application has shut down: sagas drained at shutdown are still logged.
 */
@Injectable()
export class SagaFailureLogService implements OnModuleInit, OnApplicationShutdown {
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly engine: SagaEngine<unknown>) {}

  onModuleInit(): void {
    this.unsubscribe ??= this.engine.onEvent(
      new SagaFailureLog(new NestSageLogger('Sage')).onSagaEvent,
    );
  }

  onApplicationShutdown(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }
}
