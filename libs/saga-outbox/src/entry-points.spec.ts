/**
 * The package's entry points load only what they promise (DESIGN §2, CONVENTIONS "Optional brokers
 * stay optional"): the root loads no optional peer, each subpath only its own, and everything the
 * library loads is a declared peer. Measured for real: every entry is required in a child process
 * that records the packages the library's own files ask for.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..', '..');
const pkg = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as {
  exports: Record<string, unknown>;
  peerDependencies: Record<string, string>;
  peerDependenciesMeta: Record<string, { optional?: boolean }>;
};

const required = Object.keys(pkg.peerDependencies).filter(
  (name) => !pkg.peerDependenciesMeta[name]?.optional,
);

/** The optional peers each subpath may load (on top of the required peers). */
const OPTIONAL_BY_ENTRY: Record<string, string[]> = {
  '.': [],
  './kafka': ['kafkajs'],
  './rabbitmq': ['amqplib', 'amqp-connection-manager'],
  './nats': ['@nats-io/transport-node', '@nats-io/jetstream'],
  './microservices': ['@nestjs/microservices'],
  './embedded': ['@electric-sql/pglite', '@electric-sql/pglite-socket'],
  './metrics': ['prom-client', '@willsoto/nestjs-prometheus'],
  './health': ['@nestjs/terminus'],
  './logging': ['nestjs-pino', 'pino', 'pino-http'],
  './tracing': ['@opentelemetry/api', '@opentelemetry/core'],
  './console': [],
  './testing': ['@jest/globals'],
  './migrations': [],
};

let loads: Record<string, string[]>;

beforeAll(() => {
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // jest's VM flag is not the probe's business
  const out = execFileSync(
    process.execPath,
    ['-r', 'ts-node/register/transpile-only', 'test/support/entry-point-loads.ts'],
    { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 },
  );
  loads = JSON.parse(out) as Record<string, string[]>;
}, 90_000);

describe('@sage/saga-outbox entry points', () => {
  it('every exported entry point is listed here, and every one listed is exported', () => {
    const exported = Object.keys(pkg.exports).filter((s) => s !== './package.json');
    expect(exported.sort()).toEqual(Object.keys(OPTIONAL_BY_ENTRY).sort());
    expect(Object.keys(loads).sort()).toEqual(exported.sort());
  });

  it('the root entry loads no optional peer (broker clients, PGlite, prom-client, pino, terminus, OpenTelemetry)', () => {
    const optional = loads['.']!.filter((name) => !required.includes(name));
    expect(optional).toEqual([]);
  });

  it.each(Object.keys(OPTIONAL_BY_ENTRY))(
    '%s loads only the required peers and its own',
    (entry) => {
      const allowed = new Set([...required, ...OPTIONAL_BY_ENTRY[entry]!]);
      expect(loads[entry]!.filter((name) => !allowed.has(name))).toEqual([]);
    },
  );

  it('everything the library loads is a declared peer dependency', () => {
    const loaded = new Set(Object.values(loads).flat());
    const undeclared = [...loaded].filter((name) => !(name in pkg.peerDependencies));
    expect(undeclared).toEqual([]);
  });

  it("the repository's path aliases are exactly the exported entry points (no deep imports)", () => {
    const tsconfig = readFileSync(join(ROOT, 'tsconfig.json'), 'utf8');
    const aliases = [...tsconfig.matchAll(/"(@sage\/saga-outbox[^"]*)":/g)].map((m) => m[1]!);
    const exported = Object.keys(pkg.exports)
      .filter((s) => s !== './package.json')
      .map((s) => `@sage/saga-outbox${s.slice(1)}`);
    expect(aliases.sort()).toEqual(exported.sort());
  });
});
