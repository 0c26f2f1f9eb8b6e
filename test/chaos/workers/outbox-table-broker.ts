/**
 * A Broker for chaos tests that must count publications across processes (a relay killed with
 * kill -9 loses its memory): each publish INSERTs one row per message into `chaos_published` in
 * autocommit, so every publication that reached "the broker" is durable and countable, duplicates
 * included (no unique constraint on purpose).
 */
import type { Pool } from 'pg';
import type {
  Broker,
  BrokerMessage,
  PublishResult,
} from '../../../libs/saga-outbox/src/core/ports/broker';

export const CREATE_PUBLISHED_TABLE = `CREATE TABLE IF NOT EXISTS chaos_published (
  message_id uuid NOT NULL, key text, publisher text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`;

export class TableBroker implements Broker {
  readonly name = 'chaos-table';

  constructor(
    private readonly pool: Pool,
    private readonly publisher: string,
    /** Called after the rows are written, before the publish resolves (tests pause here). */
    private readonly afterWrite: (batch: readonly BrokerMessage[]) => Promise<void> = () =>
      Promise.resolve(),
  ) {}

  async publish(batch: readonly BrokerMessage[]): Promise<PublishResult[]> {
    if (!batch.length) return [];
    await this.pool.query(
      `INSERT INTO chaos_published (message_id, key, publisher) SELECT id, key, $3 FROM unnest($1::uuid[], $2::text[]) AS m (id, key)`,
      [batch.map((m) => m.id), batch.map((m) => m.key), this.publisher],
    );
    await this.afterWrite(batch);
    return batch.map((m) => ({ id: m.id, ok: true as const }));
  }

  subscribe(): Promise<never> {
    return Promise.reject(new Error('TableBroker does not deliver'));
  }

  health(): Promise<{ up: boolean }> {
    return Promise.resolve({ up: true });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
