/**
 * Typed lifecycle events. The engine emits them; metrics, logs and the demo's trace subscribe.
 * The core never imports a metrics or tracing library.
 */
export type SagaEvent =
  | { type: 'saga.started'; sagaId: string; saga: string; at: number }
  | { type: 'saga.resumed'; sagaId: string; saga: string; at: number }
  | {
      type: 'step.started';
      sagaId: string;
      saga: string;
      step: string;
      attempt: number;
      at: number;
    }
  | {
      type: 'step.completed';
      sagaId: string;
      saga: string;
      step: string;
      attempt: number;
      durationMs: number;
      at: number;
    }
  | {
      type: 'step.retrying';
      sagaId: string;
      saga: string;
      step: string;
      attempt: number;
      delayMs: number;
      error: string;
      at: number;
    }
  | {
      type: 'step.failed';
      sagaId: string;
      saga: string;
      step: string;
      attempt: number;
      error: string;
      at: number;
    }
  | {
      /** A remote step's command is in the outbox (in the step's transaction); its reply is awaited. */
      type: 'step.waiting';
      sagaId: string;
      saga: string;
      step: string;
      attempt: number;
      phase: 'forward' | 'compensate';
      at: number;
    }
  | {
      /** Parked until a reply (or a reply timeout) wakes it; this process no longer drives it. */
      type: 'saga.waiting';
      sagaId: string;
      saga: string;
      steps: string[];
      at: number;
    }
  | { type: 'saga.compensating'; sagaId: string; saga: string; reason: string; at: number }
  | {
      type: 'compensation.completed';
      sagaId: string;
      saga: string;
      step: string;
      attempt: number;
      at: number;
    }
  | {
      type: 'compensation.retrying';
      sagaId: string;
      saga: string;
      step: string;
      attempt: number;
      delayMs: number;
      error: string;
      at: number;
    }
  | {
      type: 'compensation.failed';
      sagaId: string;
      saga: string;
      step: string;
      attempt: number;
      error: string;
      at: number;
    }
  | { type: 'saga.completed'; sagaId: string; saga: string; durationMs: number; at: number }
  | { type: 'saga.compensated'; sagaId: string; saga: string; durationMs: number; at: number }
  | {
      type: 'saga.failed';
      sagaId: string;
      saga: string;
      reason: string;
      durationMs: number;
      at: number;
    }
  | {
      type: 'saga.interrupted';
      sagaId: string;
      saga: string;
      reason: 'lease-lost' | 'shutdown' | 'store-error';
      at: number;
    };

export type SagaEventListener = (event: SagaEvent) => void;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A SagaEvent without what the runner adds to every one (`sagaId`, `saga`, `at`). */
export type SagaEventBody = DistributiveOmit<SagaEvent, 'sagaId' | 'saga' | 'at'>;
