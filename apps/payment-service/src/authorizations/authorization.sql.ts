import type { EntityManager } from 'typeorm';

export type AuthorizationStatus = 'authorized' | 'declined' | 'voided' | 'tombstone';

export interface AuthorizationRow {
  idempotency_key: string;
  saga_id: string;
  order_id: string;
  authorization_id: string | null;
  amount_cents: number | null;
  card_last4: string | null;
  status: AuthorizationStatus;
  reason: string | null;
}

const COLUMNS = `idempotency_key, saga_id, order_id, authorization_id, amount_cents, card_last4, status, reason`;

/**
 * Records the outcome of the first authorize for `key`; nothing if the key has a row already.
 * ON CONFLICT waits for a concurrent insert of the same key (a resend racing the original) to
 * commit, so at most one outcome is ever recorded per key.
 */
export async function insertAuthorization(
  manager: EntityManager,
  row: Omit<AuthorizationRow, 'reason'> & { reason?: string | null },
): Promise<AuthorizationRow | undefined> {
  const rows: AuthorizationRow[] = await manager.query(
    `WITH inserted AS (
       INSERT INTO payments.card_authorization (${COLUMNS})
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (idempotency_key) DO NOTHING
       RETURNING ${COLUMNS})
     SELECT * FROM inserted`,
    [
      row.idempotency_key,
      row.saga_id,
      row.order_id,
      row.authorization_id,
      row.amount_cents,
      row.card_last4,
      row.status,
      row.reason ?? null,
    ],
  );
  return rows[0];
}

export async function findAuthorization(
  manager: EntityManager,
  key: string,
): Promise<AuthorizationRow | undefined> {
  const rows: AuthorizationRow[] = await manager.query(
    `SELECT ${COLUMNS} FROM payments.card_authorization WHERE idempotency_key = $1`,
    [key],
  );
  return rows[0];
}

/** Voids an authorization that happened; a row in any other state is left as it is. */
export async function voidAuthorization(
  manager: EntityManager,
  key: string,
): Promise<AuthorizationRow | undefined> {
  const rows: AuthorizationRow[] = await manager.query(
    `WITH voided AS (
       UPDATE payments.card_authorization SET status = 'voided', updated_at = now()
       WHERE idempotency_key = $1 AND status = 'authorized'
       RETURNING ${COLUMNS})
     SELECT * FROM voided`,
    [key],
  );
  return rows[0];
}

export async function authorizationsOfOrder(
  manager: EntityManager,
  orderId: string,
): Promise<AuthorizationRow[]> {
  return manager.query(
    `SELECT ${COLUMNS} FROM payments.card_authorization WHERE order_id = $1 ORDER BY created_at`,
    [orderId],
  );
}
