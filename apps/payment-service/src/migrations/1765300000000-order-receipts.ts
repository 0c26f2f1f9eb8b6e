import type { MigrationInterface, QueryRunner } from 'typeorm';

/** A receipt per confirmed order (from `order.confirmed`), what the customer is charged on capture. */
export class OrderReceipts1765300000000 implements MigrationInterface {
  name = 'OrderReceipts1765300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`SELECT pg_advisory_xact_lock(7462012)`);
    // The customer's id only: the name and e-mail the event carries are not kept here.
    await q.query(`
      CREATE TABLE IF NOT EXISTS payments.order_receipt (
        order_id text PRIMARY KEY,
        customer_id text NOT NULL,
        authorization_id text NOT NULL,
        amount_minor int NOT NULL CHECK (amount_minor >= 0),
        currency text NOT NULL,
        card_last4 text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE IF EXISTS payments.order_receipt`);
  }
}
