import type { EntityManager } from 'typeorm';

export type ShipmentStatus = 'pending' | 'carrier-reserved' | 'booked' | 'cancelled';

export interface ShipmentRow {
  order_id: string;
  saga_id: string;
  customer_id: string;
  carrier: string | null;
  pickup_id: string | null;
  status: ShipmentStatus;
}

/** The shipment of an order, created pending by the shipment saga's first step. */
export async function insertShipment(
  manager: EntityManager,
  row: Pick<ShipmentRow, 'order_id' | 'saga_id' | 'customer_id'>,
): Promise<void> {
  await manager.query(
    `INSERT INTO shipping.shipment (order_id, saga_id, customer_id, status) VALUES ($1, $2, $3, 'pending')`,
    [row.order_id, row.saga_id, row.customer_id],
  );
}

/** Moves the order's shipment to `status` (with its carrier / pickup when given). */
export async function updateShipment(
  manager: EntityManager,
  orderId: string,
  status: ShipmentStatus,
  fields: { carrier?: string | null; pickupId?: string } = {},
): Promise<void> {
  await manager.query(
    `UPDATE shipping.shipment
        SET status = $2,
            carrier = CASE WHEN $3::boolean THEN $4 ELSE carrier END,
            pickup_id = COALESCE($5, pickup_id),
            updated_at = now()
      WHERE order_id = $1`,
    [orderId, status, 'carrier' in fields, fields.carrier ?? null, fields.pickupId ?? null],
  );
}

/**
 * Takes one pickup slot of `carrier`; false when none is left. A CTE so the driver returns the
 * updated rows (a bare UPDATE ... RETURNING yields [rows, count]); the row lock serialises takers.
 */
export async function takeCarrierSlot(manager: EntityManager, carrier: string): Promise<boolean> {
  const rows: unknown[] = await manager.query(
    `WITH taken AS (UPDATE shipping.carrier_capacity SET available = available - 1
                     WHERE carrier = $1 AND available > 0 RETURNING available)
     SELECT available FROM taken`,
    [carrier],
  );
  return rows.length > 0;
}

/** Gives back the slot `takeCarrierSlot` took. */
export async function releaseCarrierSlot(manager: EntityManager, carrier: string): Promise<void> {
  await manager.query(
    `UPDATE shipping.carrier_capacity SET available = available + 1 WHERE carrier = $1`,
    [carrier],
  );
}

export async function findShipment(
  manager: EntityManager,
  orderId: string,
): Promise<ShipmentRow | undefined> {
  const rows: ShipmentRow[] = await manager.query(
    `SELECT order_id, saga_id, customer_id, carrier, pickup_id, status FROM shipping.shipment WHERE order_id = $1`,
    [orderId],
  );
  return rows[0];
}

export async function carrierSlotsLeft(
  manager: EntityManager,
  carrier: string,
): Promise<number | undefined> {
  const rows: { available: number }[] = await manager.query(
    `SELECT available FROM shipping.carrier_capacity WHERE carrier = $1`,
    [carrier],
  );
  return rows[0]?.available;
}
