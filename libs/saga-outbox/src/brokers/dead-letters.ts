import { errorText } from '../core/error-text';
import type { DeadLetteredMessage } from '../core/ports/broker';
import type { SageLogger } from '../core/ports/logger';

/**
 * What every adapter adds to a dead letter, next to the original headers and body, and how it
 * reports one: logged (error, never the body) and passed to `onDeadLetter` listeners (metrics).
 *
 * Headers on the dead letter (all text):
 * - `sage-dead-letter-reason`: a DeadLetterReason (`unusable-id`, `not-json`, `max-deliveries`, …);
 * - `sage-dead-letter-detail`: what exactly was wrong (never payload data);
 * - `sage-dead-letter-id`: the message id, or `sage-derived:<sha256>` when its own is unusable;
 * - `sage-dead-letter-destination` / `-group`: where it was consumed from, by which group;
 * - `sage-dead-letter-position`: where it sits in the source (Kafka `topic/partition/offset`,
 *   JetStream `stream:sequence`), when the broker has one;
 * - `sage-dead-letter-attempts`: handler attempts made (0 when dead-lettered on sight);
 * - `sage-dead-letter-at`: when, RFC 3339.
 */
export const DEAD_LETTER_HEADER = {
  reason: 'sage-dead-letter-reason',
  detail: 'sage-dead-letter-detail',
  id: 'sage-dead-letter-id',
  destination: 'sage-dead-letter-destination',
  group: 'sage-dead-letter-group',
  position: 'sage-dead-letter-position',
  attempts: 'sage-dead-letter-attempts',
  at: 'sage-dead-letter-at',
} as const;

/** A dead letter's topic / subject / queue for a source destination: `${destination}.dlq`. */
export function deadLetterDestinationOf(destination: string): string {
  return `${destination}.dlq`;
}

/** The `sage-dead-letter-*` headers for `event`; `position` when the broker has one. */
export function deadLetterHeaders(
  event: DeadLetteredMessage,
  position?: string,
): Record<string, string> {
  const headers: Record<string, string> = {
    [DEAD_LETTER_HEADER.reason]: event.reason,
    [DEAD_LETTER_HEADER.detail]: event.detail,
    [DEAD_LETTER_HEADER.id]: event.messageId,
    [DEAD_LETTER_HEADER.destination]: event.destination,
    [DEAD_LETTER_HEADER.group]: event.group,
    [DEAD_LETTER_HEADER.attempts]: String(event.attempts),
    [DEAD_LETTER_HEADER.at]: new Date().toISOString(),
  };
  if (position !== undefined) headers[DEAD_LETTER_HEADER.position] = position;
  return headers;
}

/** An adapter's `onDeadLetter` listeners, and the one way it reports a dead letter. */
export class DeadLetterReporter {
  private readonly listeners = new Set<(event: DeadLetteredMessage) => void>();

  constructor(private readonly logger: () => SageLogger) {}

  listen(listener: (event: DeadLetteredMessage) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Logs the dead letter (error) and tells every listener; a throwing listener is logged, not fatal. */
  report(event: DeadLetteredMessage): void {
    this.logger().error(`${event.broker}: message dead-lettered (${event.reason})`, {
      event: 'broker.dead_lettered',
      broker: event.broker,
      destination: event.destination,
      group: event.group,
      messageId: event.messageId,
      reason: event.reason,
      detail: event.detail,
      deadLetterDestination: event.deadLetterDestination,
      attempts: event.attempts,
    });
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.logger().warn('dead-letter listener threw', {
          event: 'broker.listener_error',
          error: errorText(error),
        });
      }
    }
  }
}
