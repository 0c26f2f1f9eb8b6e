/**
 * Prints, as JSON, the packages each of @sage/saga-outbox's entry points loads at import time —
 * only requests made by the library's own files, so a peer's own dependencies do not count. One
 * process for all entries: the require cache is emptied between them, so each entry is measured
 * from scratch.
 *
 *   node -r ts-node/register/transpile-only test/support/entry-point-loads.ts
 */
import Module, { builtinModules } from 'node:module';
import { join, sep } from 'node:path';

const SRC = join(__dirname, '..', '..', 'libs', 'saga-outbox', 'src') + sep;
// eslint-disable-next-line @typescript-eslint/no-require-imports -- JSON, read the same way as users' tools do
const pkg = require('../../libs/saga-outbox/package.json') as {
  exports: Record<string, string | { default: string }>;
};

const loads = new Set<string>();
const packageName = (request: string): string =>
  request.startsWith('@') ? request.split('/').slice(0, 2).join('/') : request.split('/')[0]!;

type Load = (request: string, parent: { filename?: string } | null, isMain: boolean) => unknown;
const moduleInternals = Module as unknown as { _load: Load };
const originalLoad = moduleInternals._load;
moduleInternals._load = function (request, parent, isMain) {
  const fromLibrary = parent?.filename?.startsWith(SRC) ?? false;
  const external = !request.startsWith('.') && !request.startsWith('/');
  if (fromLibrary && external && !request.startsWith('node:') && !builtinModules.includes(request))
    loads.add(packageName(request));
  return originalLoad.call(this, request, parent, isMain);
};

const result: Record<string, string[]> = {};
for (const [subpath, target] of Object.entries(pkg.exports)) {
  if (subpath === './package.json' || typeof target === 'string') continue;
  const file = join(SRC, target.default.replace('./dist/', '').replace(/\.js$/, '.ts'));
  for (const key of Object.keys(require.cache)) delete require.cache[key];
  loads.clear();
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports, security/detect-non-literal-require -- measuring what require() loads; the path is a package.json export under SRC
    require(file);
  } catch (error) {
    // ./testing imports @jest/globals, which refuses to load outside jest: what it asked for is
    // recorded all the same.
    if (!String(error).includes('@jest/globals')) throw error;
  }
  result[subpath] = [...loads].sort();
}
process.stdout.write(JSON.stringify(result));
