/**
 * Typed events of the consumer inbox, one per delivery outcome. Metrics and logs subscribe with
 * `InboxProcessor.onEvent`; the core never imports a metrics library.
 */
export type InboxEvent =
  | {
      type: 'inbox.processed';
      consumer: string;
      messageId: string;
      attempt: number;
      /** Handler plus commit. */
      durationMs: number;
      at: number;
    }
  | {
      /** The inbox already held the message (handled or dead-lettered): skipped and acknowledged. */
      type: 'inbox.duplicate';
      consumer: string;
      messageId: string;
      at: number;
    }
  | {
      /** Rolled back; counted; the broker is to redeliver. */
      type: 'inbox.failed';
      consumer: string;
      messageId: string;
      /** Failed attempts so far; null when the failure could not be recorded (database down). */
      attempts: number | null;
      maxAttempts: number;
      error: string;
      at: number;
    }
  | {
      /** Poison: the last allowed attempt failed; kept in the inbox as a dead letter and acknowledged. */
      type: 'inbox.dead-lettered';
      consumer: string;
      messageId: string;
      attempts: number;
      error: string;
      at: number;
    };

export type InboxEventType = InboxEvent['type'];
export type InboxEventListener = (event: InboxEvent) => void;
