import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../cli';
import type { CliIo } from '../io';

function io(): CliIo & { stdout: () => string; stderr: () => string } {
  let out = '';
  let err = '';
  return {
    env: {},
    out: (t) => void (out += t),
    err: (t) => void (err += t),
    stdout: () => out,
    stderr: () => err,
  };
}

async function sage(...argv: string[]) {
  const out = io();
  const code = await runCli(argv, out);
  return { code, stdout: out.stdout(), stderr: out.stderr() };
}

const orderPlaced = (version: number, properties: object, required: string[]) => ({
  type: 'order.placed',
  version,
  schema: { type: 'object', properties, required },
});

const V1 = orderPlaced(1, { orderId: { type: 'string' }, total: { type: 'number' } }, [
  'orderId',
  'total',
]);

describe('sage contracts snapshot / check', () => {
  let dir: string;
  const file = (name: string) => join(dir, name);
  /** A CommonJS module exporting `contracts` (or a default export), as compiled app code does. */
  const contractsModule = (name: string, contracts: object[], as = 'contracts'): string => {
    writeFileSync(
      file(name),
      as === 'default'
        ? `exports.default = ${JSON.stringify(contracts)};\n`
        : `exports.${as} = ${JSON.stringify(contracts)};\n`,
    );
    return file(name);
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sage-contracts-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes a canonical snapshot, then passes an additive version and fails a breaking one', async () => {
    const snapshot = file('contracts.snapshot.json');
    const written = await sage(
      'contracts',
      'snapshot',
      '--contracts',
      contractsModule('v1.js', [V1]),
      '--out',
      snapshot,
    );
    expect(written).toMatchObject({ code: 0, stderr: '' });
    expect(written.stdout).toMatch(/wrote .*: 1 type\(s\), 1 version\(s\)/);
    expect(JSON.parse(readFileSync(snapshot, 'utf8'))).toEqual({
      format: 'sage.contracts.v1',
      contracts: { 'order.placed': { '1': { schema: V1.schema, compatibility: 'backward' } } },
    });

    // Additive: v2 adds an optional field.
    const additive = orderPlaced(
      2,
      { orderId: { type: 'string' }, total: { type: 'number' }, currency: { type: 'string' } },
      ['orderId', 'total'],
    );
    const pass = await sage(
      'contracts',
      'check',
      '--contracts',
      contractsModule('additive.js', [V1, additive], 'default'),
      '--snapshot',
      snapshot,
    );
    expect(pass).toMatchObject({ code: 0, stderr: '' });
    expect(pass.stdout).toContain('/properties/currency');
    expect(pass.stdout).toContain('added optional field');
    expect(pass.stdout).toMatch(/compatible with .*contracts\.snapshot\.json\n$/);

    // Breaking: v2 retypes a required field.
    const breaking = orderPlaced(2, { orderId: { type: 'string' }, total: { type: 'string' } }, [
      'orderId',
      'total',
    ]);
    const fail = await sage(
      'contracts',
      'check',
      '--contracts',
      contractsModule('breaking.js', [V1, breaking]),
      '--snapshot',
      snapshot,
    );
    expect(fail.code).toBe(1);
    expect(fail.stdout).toMatch(
      /BREAKING\s+order\.placed\s+2\s+\/properties\/total\/type\s+retyped/,
    );
    expect(fail.stdout).toMatch(/1 breaking change\(s\)/);

    const asJson = await sage(
      'contracts',
      'check',
      '--contracts',
      file('breaking.js'),
      '--snapshot',
      snapshot,
      '--json',
    );
    expect(asJson.code).toBe(1);
    const report = JSON.parse(asJson.stdout) as {
      compatible: boolean;
      changes: { path: string; breaking: boolean }[];
    };
    expect(report.compatible).toBe(false);
    expect(report.changes.filter((c) => c.breaking).map((c) => c.path)).toEqual([
      '/properties/total/type',
    ]);
  });

  it('fails an edited published version and a removed one (unless --allow-removals)', async () => {
    const snapshot = file('two.snapshot.json');
    const v2 = orderPlaced(2, { orderId: { type: 'string' } }, ['orderId']);
    await sage(
      'contracts',
      'snapshot',
      '--contracts',
      contractsModule('two.js', [V1, v2]),
      '--out',
      snapshot,
    );

    const edited = { ...V1, schema: { ...V1.schema, description: 'edited' } };
    const changed = await sage(
      'contracts',
      'check',
      '--contracts',
      contractsModule('edited.js', [edited, v2]),
      '--snapshot',
      snapshot,
    );
    expect(changed.code).toBe(1);
    expect(changed.stdout).toContain('version 1 is published and cannot change');

    const removed = contractsModule('removed.js', [v2]);
    expect(
      (await sage('contracts', 'check', '--contracts', removed, '--snapshot', snapshot)).code,
    ).toBe(1);
    const allowed = await sage(
      'contracts',
      'check',
      '--contracts',
      removed,
      '--snapshot',
      snapshot,
      '--allow-removals',
    );
    expect(allowed.code).toBe(0);
    expect(allowed.stdout).toContain('version 1 removed');
  });

  it.each([
    [['contracts', 'check'], /--contracts FILE is required/],
    [['contracts', 'check', '--contracts', '/nonexistent/sage-contracts.js'], /no such file/],
    [
      ['contracts', 'snapshot', '--contracts', 'EXPORTS_OTHER'],
      /must export "contracts".*it exports: other/,
    ],
    [
      ['contracts', 'check', '--contracts', 'V1', '--snapshot', '/nonexistent/s.json'],
      /sage contracts snapshot --contracts FILE/,
    ],
    [
      ['contracts', 'check', '--contracts', 'V1', '--snapshot', 'NOT_A_SNAPSHOT'],
      /is not a Sage contracts snapshot/,
    ],
    [
      ['contracts', 'snapshot', '--contracts', 'INVALID'],
      /contracts\["order.placed"\].version.*integer >= 1/,
    ],
  ])('usage error (exit 2): %j', async (argv, message) => {
    const names: Record<string, () => string> = {
      EXPORTS_OTHER: () => {
        writeFileSync(file('other.js'), 'exports.other = [];\n');
        return file('other.js');
      },
      V1: () => contractsModule('usage-v1.js', [V1]),
      NOT_A_SNAPSHOT: () => {
        writeFileSync(file('not-a-snapshot.json'), '{"contracts":{}}');
        return file('not-a-snapshot.json');
      },
      INVALID: () => contractsModule('invalid.js', [{ ...V1, version: 0 }]),
    };
    const result = await sage(...argv.map((a) => names[a]?.() ?? a));
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
  });
});
