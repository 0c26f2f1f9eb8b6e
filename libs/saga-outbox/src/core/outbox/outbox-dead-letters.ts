import { InvalidOptionsError } from '../errors';
import { silentLogger, type SageLogger } from '../ports/logger';
import type { DeadLetterFilter, DeadLetterPage, OutboxStore } from '../ports/outbox-store';
import { OutboxMessageNotFoundError } from './outbox-errors';
import type { OutboxMessage } from './outbox-message';

const MAX_PAGE = 1000;

/**
 * Operator API over dead-lettered outbox messages: list, inspect, replay (one or by filter),
 * discard. Replay moves a message back to `pending` with attempts reset; it keeps its place in its
 * key's order (later unsent messages of the key wait for it). Every change is logged.
 */
export class OutboxDeadLetters {
  constructor(
    private readonly store: OutboxStore,
    private readonly logger: SageLogger = silentLogger,
  ) {}

  list(
    filter: DeadLetterFilter = {},
    page: { limit?: number; after?: string } = {},
  ): Promise<DeadLetterPage> {
    return this.store.listDeadLetters(filter, pageLimit(page.limit, 100), page.after);
  }

  /** Any outbox message by id (not only dead letters); throws OutboxMessageNotFoundError. */
  async inspect(id: string): Promise<OutboxMessage> {
    const message = await this.store.get(id);
    if (!message) throw new OutboxMessageNotFoundError(id, 'outbox');
    return message;
  }

  /** Replays one dead letter; throws OutboxMessageNotFoundError unless it is dead-lettered. */
  async replay(id: string): Promise<void> {
    const [replayed] = await this.store.replayDeadLetters({ ids: [id] });
    if (!replayed) throw new OutboxMessageNotFoundError(id, 'dead-lettered');
    this.logger.info('outbox dead letter replayed', {
      event: 'outbox.dead_letter.replayed',
      messageId: id,
    });
  }

  /** Replays up to `limit` (default 1000) dead letters matching `filter`; returns their ids. */
  async replayMatching(
    filter: DeadLetterFilter,
    options: { limit?: number } = {},
  ): Promise<string[]> {
    const ids = await this.store.replayDeadLetters({
      filter,
      limit: pageLimit(options.limit, MAX_PAGE),
    });
    this.logger.info('outbox dead letters replayed by filter', {
      event: 'outbox.dead_letter.replayed',
      filter,
      count: ids.length,
    });
    return ids;
  }

  /** Deletes one dead letter for good; throws OutboxMessageNotFoundError unless it is dead-lettered. */
  async discard(id: string): Promise<void> {
    const [discarded] = await this.store.discardDeadLetters({ ids: [id] });
    if (!discarded) throw new OutboxMessageNotFoundError(id, 'dead-lettered');
    this.logger.warn('outbox dead letter discarded', {
      event: 'outbox.dead_letter.discarded',
      messageId: id,
    });
  }

  async discardMatching(
    filter: DeadLetterFilter,
    options: { limit?: number } = {},
  ): Promise<string[]> {
    const ids = await this.store.discardDeadLetters({
      filter,
      limit: pageLimit(options.limit, MAX_PAGE),
    });
    this.logger.warn('outbox dead letters discarded by filter', {
      event: 'outbox.dead_letter.discarded',
      filter,
      count: ids.length,
    });
    return ids;
  }
}

function pageLimit(limit: number | undefined, fallback: number): number {
  const n = limit ?? fallback;
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE) {
    throw new InvalidOptionsError(
      'limit',
      `must be an integer between 1 and ${MAX_PAGE}, got ${String(limit)}`,
    );
  }
  return n;
}
