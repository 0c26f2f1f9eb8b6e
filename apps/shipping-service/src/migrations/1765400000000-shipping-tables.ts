import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The shipping service's own schema (Sage's tables come from sagaOutboxMigrations()). */
export class ShippingTables1765400000000 implements MigrationInterface {
  name = 'ShippingTables1765400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`SELECT pg_advisory_xact_lock(7462013)`);
    await q.query(`CREATE SCHEMA IF NOT EXISTS shipping`);
    // One shipment per order (the order id is the key, whatever arrives twice); the customer's id
    // only: the label's name and address are read from the customer system when it is printed.
    await q.query(`
      CREATE TABLE IF NOT EXISTS shipping.shipment (
        order_id text PRIMARY KEY,
        saga_id uuid NOT NULL,
        customer_id text NOT NULL,
        carrier text,
        pickup_id text UNIQUE,
        status text NOT NULL CHECK (status IN ('pending', 'carrier-reserved', 'booked', 'cancelled')),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    // Pickup slots a carrier has left: `reserve-carrier` takes one, its compensation gives it back.
    await q.query(`
      CREATE TABLE IF NOT EXISTS shipping.carrier_capacity (
        carrier text PRIMARY KEY,
        available int NOT NULL CHECK (available >= 0)
      )`);
    await q.query(
      `INSERT INTO shipping.carrier_capacity (carrier, available) VALUES ('sample-express', 1000)
       ON CONFLICT (carrier) DO NOTHING`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP SCHEMA IF EXISTS shipping CASCADE`);
  }
}
