/**
 * The WAL relay's default replication slot and publication name for a Sage schema: `sage_outbox`
 * for the default schema, `sage_outbox_<schema>` otherwise (cut to PostgreSQL's 63-byte limit).
 * Schema names are validated ([a-z0-9_], see schema-name.ts), so the result is a plain identifier.
 */
export function defaultWalName(schema: string): string {
  return (schema === 'sage' ? 'sage_outbox' : `sage_outbox_${schema}`).slice(0, 63);
}
