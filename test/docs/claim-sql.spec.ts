/**
 * docs/architecture.md shows the relay's claim statement whole; it must be the statement the
 * library sends (rendered for the default schema, indentation removed).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { claimOutboxMessages } from '../../libs/saga-outbox/src/persistence/postgres/outbox-queries.sql';
import { outboxTables } from '../../libs/saga-outbox/src/persistence/postgres/outbox-tables';
import { sagaSchema } from '../../libs/saga-outbox/src/persistence/postgres/schema-name';

function dedent(text: string): string {
  const lines = text.replace(/^\n+|\s+$/g, '').split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => /^ */.exec(l)![0].length));
  return lines.map((l) => l.slice(indent)).join('\n');
}

it("docs/architecture.md shows the relay's claim SQL exactly as the library renders it", () => {
  const doc = readFileSync(join(__dirname, '..', '..', 'docs', 'architecture.md'), 'utf8');
  const shown = /<!-- claim-sql:begin -->\s*```sql\n([\s\S]*?)\n```\s*<!-- claim-sql:end -->/.exec(
    doc,
  );
  expect(shown).not.toBeNull();
  const rendered = claimOutboxMessages(outboxTables(sagaSchema('sage')), {
    claimToken: 'token',
    limit: 100,
    leaseMs: 30_000,
  }).text;
  expect(shown![1]).toBe(dedent(rendered));
});
