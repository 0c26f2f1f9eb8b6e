/**
 * docs/troubleshooting.md lists every error code Sage throws, so a user who searches the page for
 * the `code` of an error finds its fix. A new SagaOutboxError subclass without an entry fails here.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return /\.ts$/.test(name) && !/\.(spec|int-spec|e2e-spec)\.ts$/.test(name) ? [path] : [];
  });
}

/** The codes passed to SagaOutboxError's constructor: `super('SOME_CODE', ...)`. */
function thrownCodes(): string[] {
  const codes = new Set<string>();
  for (const file of sources(join(root, 'libs', 'saga-outbox', 'src'))) {
    const text = readFileSync(file, 'utf8');
    if (!/extends SagaOutboxError/.test(text)) continue;
    for (const m of text.matchAll(/super\(\s*'([A-Z][A-Z0-9_]+)'/g)) codes.add(m[1]!);
  }
  return [...codes].sort();
}

it('docs/troubleshooting.md has an entry for every error code the library throws', () => {
  const doc = readFileSync(join(root, 'docs', 'troubleshooting.md'), 'utf8');
  const codes = thrownCodes();
  expect(codes.length).toBeGreaterThan(30);
  expect(codes.filter((code) => !doc.includes(`\`${code}\``))).toEqual([]);
});
