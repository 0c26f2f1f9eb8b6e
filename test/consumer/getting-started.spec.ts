/**
 * docs/getting-started.md is the consumer app (test/consumer-app), which CI builds from the packed
 * tarball and runs (scripts/consumer-test.sh): every source file of the app appears in the guide
 * verbatim, every code block naming a file matches it, and the guide's install lines are the
 * install lists the consumer test uses (test/consumer/peers.json).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const ROOT = join(__dirname, '..', '..');
const APP = join(ROOT, 'test', 'consumer-app');
const guide = readFileSync(join(ROOT, 'docs', 'getting-started.md'), 'utf8');
const peers = JSON.parse(readFileSync(join(__dirname, 'peers.json'), 'utf8')) as {
  required: string[];
  app: string[];
  brokers: Record<string, string[]>;
};

/** Fenced code blocks: language and body. */
const blocks = [...guide.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({
  lang: m[1]!,
  body: m[2]!,
}));

/** Blocks whose first line names an app file (`// src/…`), by that path. */
const fileBlocks = new Map(
  blocks.flatMap(({ body }) => {
    const first = /^\/\/ (src\/\S+\.ts)\n/.exec(body);
    return first ? [[first[1]!, body.slice(first[0].length)] as const] : [];
  }),
);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : [relative(APP, path)];
  });
}

const installLines = blocks
  .filter((b) => b.lang === 'bash')
  .flatMap((b) => b.body.split('\n'))
  .filter((line) => line.startsWith('npm install '))
  .map((line) => line.replace(/#.*$/, '').trim().split(/\s+/).slice(2));

describe('docs/getting-started.md', () => {
  const files = sources(join(APP, 'src')).sort();

  it('shows every source file of the consumer app', () => {
    expect([...fileBlocks.keys()].sort()).toEqual(files);
  });

  it.each(files)('%s in the guide is the file CI builds and runs', (file) => {
    expect(fileBlocks.get(file)).toBe(readFileSync(join(APP, file), 'utf8'));
  });

  it('installs exactly what the consumer test installs', () => {
    expect(installLines).toContainEqual(['@sage/saga-outbox', ...peers.required]);
    expect(installLines).toContainEqual(peers.app);
    for (const [broker, packages] of Object.entries(peers.brokers))
      expect({ broker, line: installLines.find((l) => l[0] === packages[0]) }).toEqual({
        broker,
        line: packages,
      });
  });
});
