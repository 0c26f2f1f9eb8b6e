import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The order service's own business tables (Sage's tables come from sagaOutboxMigrations()). */
export class OrderTables1764230500000 implements MigrationInterface {
  name = 'OrderTables1764230500000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`SELECT pg_advisory_xact_lock(7462011)`);
    await q.query(`CREATE SCHEMA IF NOT EXISTS orders`);
    await q.query(`
      CREATE TABLE IF NOT EXISTS orders.customer_order (
        id text PRIMARY KEY,
        customer text NOT NULL,
        sku text NOT NULL,
        quantity int NOT NULL CHECK (quantity > 0),
        amount_cents int NOT NULL CHECK (amount_cents >= 0),
        status text NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled')),
        saga_id uuid,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE IF NOT EXISTS orders.stock (
        sku text PRIMARY KEY,
        available int NOT NULL CHECK (available >= 0)
      )`);
    await q.query(`
      CREATE TABLE IF NOT EXISTS orders.payment (
        order_id text PRIMARY KEY,
        amount_cents int NOT NULL,
        status text NOT NULL CHECK (status IN ('authorized', 'voided')),
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    // One row per local-step effect, so the demo and the tests can prove "exactly once".
    await q.query(`
      CREATE TABLE IF NOT EXISTS orders.effect_log (
        id bigserial PRIMARY KEY,
        order_id text NOT NULL,
        effect text NOT NULL,
        at timestamptz NOT NULL DEFAULT clock_timestamp()
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP SCHEMA IF EXISTS orders CASCADE`);
  }
}
