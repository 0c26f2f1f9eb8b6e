import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The payment service's own schema (Sage's tables come from sagaOutboxMigrations()). */
export class PaymentTables1764230600000 implements MigrationInterface {
  name = 'PaymentTables1764230600000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`SELECT pg_advisory_xact_lock(7462012)`);
    await q.query(`CREATE SCHEMA IF NOT EXISTS payments`);
    await q.query(`
      CREATE TABLE IF NOT EXISTS payments.ledger_entry (
        id bigserial PRIMARY KEY,
        account text NOT NULL,
        amount_cents int NOT NULL,
        reference text NOT NULL UNIQUE,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE IF NOT EXISTS payments.refund (
        id text PRIMARY KEY,
        account text NOT NULL,
        amount_cents int NOT NULL CHECK (amount_cents > 0),
        status text NOT NULL CHECK (status IN ('requested', 'paid', 'rejected')),
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP SCHEMA IF EXISTS payments CASCADE`);
  }
}
