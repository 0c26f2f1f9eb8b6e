import { InvalidOptionsError } from '../errors';
import { requiredName } from '../options';
import type { OutboxPublisher } from '../outbox/outbox-publisher';
import type { SagaStatus, WithinTransaction } from '../ports/saga-store';

/** Outbox message types of the saga lifecycle events (opt-in: SagaEngineOptions.lifecycleEvents). */
export const SAGA_LIFECYCLE_EVENT_TYPES = {
  started: 'sage.saga.started',
  stepCompleted: 'sage.saga.step-completed',
  completed: 'sage.saga.completed',
  compensated: 'sage.saga.compensated',
  failed: 'sage.saga.failed',
} as const;

export type SagaLifecycleEventType =
  (typeof SAGA_LIFECYCLE_EVENT_TYPES)[keyof typeof SAGA_LIFECYCLE_EVENT_TYPES];

/** Payload of every lifecycle event; the message key is the saga id (per-saga order). */
export interface SagaLifecycleEventPayload {
  sagaId: string;
  /** Saga name. */
  saga: string;
  /** The step the event is about (step-completed; the failed step for compensated/failed), else null. */
  step: string | null;
  /** The saga's status once the change commits. */
  status: SagaStatus;
  /** Why the saga compensated or failed, else null. Cut to MAX_EVENT_ERROR_LENGTH characters. */
  error: string | null;
}

type SagaLifecycleEventInput = Omit<SagaLifecycleEventPayload, 'step' | 'error'> & {
  step?: string | null;
  error?: string | null;
};

export interface SagaLifecycleEventsOptions {
  /** Topic / exchange / subject the events are published to. */
  destination: string;
}

/** Errors can be long (stack-like messages); an event that outgrew the outbox limit would block the saga. */
export const MAX_EVENT_ERROR_LENGTH = 4096;

/**
 * Writes lifecycle events to the outbox in the transaction of the change they describe: the event
 * exists if and only if the change committed, exactly once per change.
 */
export class SagaLifecycleEvents<Tx> {
  readonly destination: string;
  private readonly outbox: OutboxPublisher<Tx>;

  constructor(options: SagaLifecycleEventsOptions, outbox: OutboxPublisher<Tx> | undefined) {
    // Stored as every event's outbox destination: a name PostgreSQL can store as given.
    requiredName('sagaEvents.destination', options?.destination);
    if (!outbox)
      throw new InvalidOptionsError(
        'sagaEvents',
        'saga lifecycle events are written to the outbox, but the saga engine has no outbox',
      );
    this.destination = options.destination;
    this.outbox = outbox;
  }

  /** The event as a store hook, to run in the transaction of the change (SagaStore `within`). */
  within(type: SagaLifecycleEventType, event: SagaLifecycleEventInput): WithinTransaction<Tx> {
    return (tx) => this.write(tx, type, event);
  }

  async write(tx: Tx, type: SagaLifecycleEventType, event: SagaLifecycleEventInput): Promise<void> {
    const error = event.error ?? null;
    const payload: SagaLifecycleEventPayload = {
      sagaId: event.sagaId,
      saga: event.saga,
      step: event.step ?? null,
      status: event.status,
      error: error === null ? null : cut(error),
    };
    await this.outbox.publish(
      {
        destination: this.destination,
        type,
        key: event.sagaId,
        sagaId: event.sagaId,
        payload: { ...payload },
        headers: { 'sage-saga-id': event.sagaId, 'sage-saga': event.saga },
      },
      { manager: tx },
    );
  }
}

/** At most MAX_EVENT_ERROR_LENGTH UTF-16 units plus an ellipsis, never splitting a surrogate pair (jsonb rejects a lone one). */
function cut(text: string): string {
  if (text.length <= MAX_EVENT_ERROR_LENGTH) return text;
  let end = MAX_EVENT_ERROR_LENGTH;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${text.slice(0, end)}…`;
}
