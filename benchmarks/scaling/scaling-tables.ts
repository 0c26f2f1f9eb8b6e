/**
 * The bench's own tables next to Sage's (schema `bench`, created by prepareDatabase) and the
 * statements that reset and count them between rounds. The effect table has NO unique
 * constraint on purpose: a message handled twice leaves two rows, so "effects exactly once" is
 * something the run checks, not something a constraint enforces.
 */
import type pg from 'pg';
import { BUSINESS_TABLE } from '../harness/database';
import { OUTBOX_TABLES } from '../harness/outbox-load';

export const EFFECT_TABLE = 'bench.scaling_effect';

/** The consumer handler's one write, in the inbox transaction. */
export const INSERT_EFFECT = `INSERT INTO ${EFFECT_TABLE} (message_id, worker) VALUES ($1, $2)`;

export async function createScalingTables(admin: pg.Client): Promise<void> {
  await admin.query(
    `CREATE TABLE IF NOT EXISTS ${EFFECT_TABLE} (
       id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
       message_id text        NOT NULL,
       worker     text        NOT NULL,
       created_at timestamptz NOT NULL DEFAULT now()
     )`,
  );
}

/** Empties every table a round writes, then CHECKPOINT so no round pays for the previous one's pages. */
export async function resetScalingTables(admin: pg.Client): Promise<void> {
  await admin.query(
    `TRUNCATE ${OUTBOX_TABLES.outboxMessage}, sage.inbox_message, sage.inbox_failure,
              sage.saga_step, sage.saga_instance, ${BUSINESS_TABLE}, ${EFFECT_TABLE}`,
  );
  await admin.query('CHECKPOINT');
}

/** Each statement returns one row with one integer column `n`: the done-conditions of the rounds. */
export const COUNT = {
  outboxSent: `SELECT count(*)::int AS n FROM ${OUTBOX_TABLES.outboxMessage} WHERE status = 'sent'`,
  outboxNotSent: `SELECT count(*)::int AS n FROM ${OUTBOX_TABLES.outboxMessage} WHERE status <> 'sent'`,
  effects: `SELECT count(*)::int AS n FROM ${EFFECT_TABLE}`,
  distinctEffects: `SELECT count(DISTINCT message_id)::int AS n FROM ${EFFECT_TABLE}`,
  effectWorkers: `SELECT count(DISTINCT worker)::int AS n FROM ${EFFECT_TABLE}`,
  inboxRows: `SELECT count(*)::int AS n FROM sage.inbox_message`,
  sagasCompleted: `SELECT count(*)::int AS n FROM sage.saga_instance WHERE status = 'completed'`,
  sagasNotCompleted: `SELECT count(*)::int AS n FROM sage.saga_instance WHERE status <> 'completed'`,
  businessRows: `SELECT count(*)::int AS n FROM ${BUSINESS_TABLE}`,
  distinctBusinessRows: `SELECT count(DISTINCT (saga_id, step))::int AS n FROM ${BUSINESS_TABLE}`,
} as const;

export async function count(client: pg.Client, sql: string): Promise<number> {
  const { rows } = await client.query<{ n: number }>(sql);
  return rows[0]?.n ?? 0;
}
