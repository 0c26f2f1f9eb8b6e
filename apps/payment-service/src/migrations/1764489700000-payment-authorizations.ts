import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Card authorizations made for the order saga's `payment.authorize` / `payment.void` commands. */
export class PaymentAuthorizations1764489700000 implements MigrationInterface {
  name = 'PaymentAuthorizations1764489700000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`SELECT pg_advisory_xact_lock(7462012)`);
    // One row per authorize command, keyed by its idempotency key (the same on every resend), so a
    // resend finds the first answer. `tombstone`: voided before any authorize arrived; a late
    // authorize for the key is refused.
    await q.query(`
      CREATE TABLE IF NOT EXISTS payments.card_authorization (
        idempotency_key text PRIMARY KEY,
        saga_id text NOT NULL,
        order_id text NOT NULL,
        authorization_id text UNIQUE,
        amount_cents int,
        card_last4 text,
        status text NOT NULL CHECK (status IN ('authorized', 'declined', 'voided', 'tombstone')),
        reason text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(
      `CREATE INDEX IF NOT EXISTS card_authorization_order_idx ON payments.card_authorization (order_id)`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE IF EXISTS payments.card_authorization`);
  }
}
