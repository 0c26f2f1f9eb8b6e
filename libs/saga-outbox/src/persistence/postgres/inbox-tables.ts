import { outboxTables } from './outbox-tables';
import type { SagaSchema } from './schema-name';

/**
 * Quoted identifiers of the consumer inbox tables, built from a validated SagaSchema (the one place
 * a configurable identifier enters SQL, see schema-name.ts).
 */
export interface InboxTables {
  readonly schema: SagaSchema;
  /** `"sage"."inbox_message"`: one row per (consumer, message) handled or dead-lettered. */
  readonly inboxMessage: string;
  /** `"sage"."inbox_failure"`: failed attempts of messages not yet handled (poison counting). */
  readonly inboxFailure: string;
}

const cache = new WeakMap<SagaSchema, InboxTables>();

export function inboxTables(schema: SagaSchema): InboxTables {
  const hit = cache.get(schema);
  if (hit) return hit;
  const tables: InboxTables = Object.freeze({
    schema,
    // The outbox migration created inbox_message: one definition of its name.
    inboxMessage: outboxTables(schema).inboxMessage,
    inboxFailure: `${schema.quoted}."inbox_failure"`,
  });
  cache.set(schema, tables);
  return tables;
}
