import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The app's own tables; Sage's come from sagaOutboxMigrations(). */
export class CreateOrders1767225600000 implements MigrationInterface {
  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE orders (
        id uuid PRIMARY KEY,
        customer text NOT NULL,
        amount_cents integer NOT NULL,
        status text NOT NULL,
        saga_id uuid NOT NULL
      )`);
    await queryRunner.query(`
      CREATE TABLE shipments (
        order_id uuid NOT NULL,
        message_id text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE shipments');
    await queryRunner.query('DROP TABLE orders');
  }
}
