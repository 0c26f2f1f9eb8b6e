import type { SagaSchema } from './schema-name';

/**
 * Quoted identifiers of the outbox and inbox tables, built from a validated SagaSchema (the one place
 * a configurable identifier enters SQL, see schema-name.ts), and the NOTIFY channel name.
 */
export interface OutboxTables {
  readonly schema: SagaSchema;
  /** `"sage"."outbox_message"` */
  readonly outboxMessage: string;
  /** `"sage"."inbox_message"` */
  readonly inboxMessage: string;
  /** `"sage"."outbox_message_notify"` (trigger function) */
  readonly notifyFunction: string;
  /**
   * The LISTEN/NOTIFY channel: `sage_outbox` for the default schema, `sage_outbox_<schema>`
   * otherwise (cut to PostgreSQL's 63-byte limit). Only [a-z0-9_], so it is safe as a literal and
   * as an identifier.
   */
  readonly channel: string;
}

const cache = new WeakMap<SagaSchema, OutboxTables>();

export function outboxTables(schema: SagaSchema): OutboxTables {
  const hit = cache.get(schema);
  if (hit) return hit;
  const tables: OutboxTables = Object.freeze({
    schema,
    outboxMessage: `${schema.quoted}."outbox_message"`,
    inboxMessage: `${schema.quoted}."inbox_message"`,
    notifyFunction: `${schema.quoted}."outbox_message_notify"`,
    channel: (schema.name === 'sage' ? 'sage_outbox' : `sage_outbox_${schema.name}`).slice(0, 63),
  });
  cache.set(schema, tables);
  return tables;
}

/** Advisory-lock key of the leader-only outbox maintenance ("sage:out" as a big-endian int8). */
export const OUTBOX_MAINTENANCE_LOCK_KEY = '8314040071572387188';
