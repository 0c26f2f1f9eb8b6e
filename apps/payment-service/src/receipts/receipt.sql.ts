import type { EntityManager } from 'typeorm';

export interface ReceiptRow {
  order_id: string;
  customer_id: string;
  authorization_id: string;
  amount_minor: number;
  currency: string;
  card_last4: string;
}

const COLUMNS = `order_id, customer_id, authorization_id, amount_minor, currency, card_last4`;

/** Records the receipt of an order; nothing if it has one (one receipt per order, whatever arrives twice). */
export async function insertReceipt(manager: EntityManager, row: ReceiptRow): Promise<void> {
  await manager.query(
    `INSERT INTO payments.order_receipt (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (order_id) DO NOTHING`,
    [
      row.order_id,
      row.customer_id,
      row.authorization_id,
      row.amount_minor,
      row.currency,
      row.card_last4,
    ],
  );
}

export async function findReceipt(
  manager: EntityManager,
  orderId: string,
): Promise<ReceiptRow | undefined> {
  const rows: ReceiptRow[] = await manager.query(
    `SELECT ${COLUMNS} FROM payments.order_receipt WHERE order_id = $1`,
    [orderId],
  );
  return rows[0];
}
