import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../cli';
import type { CliIo } from '../io';

const ROOT = join(__dirname, '..', '..', '..', '..', '..');

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

const service = (schema: object) => ({
  id: 'shipping',
  version: '1.0.0',
  publishes: [{ type: 'parcel.sent', version: 1, destination: 'parcels', schema }],
});

describe('sage asyncapi', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sage-asyncapi-'));
    writeFileSync(
      join(dir, 'good.js'),
      `module.exports = { shipping: ${JSON.stringify(service({ type: 'object' }))} };\n`,
    );
    // `type: 5` is no JSON Schema type: the parser reports it.
    writeFileSync(
      join(dir, 'bad.js'),
      `exports.asyncapi = ${JSON.stringify(service({ type: 5 }))};\n`,
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("prints the sample service's document, the one committed in docs/asyncapi", async () => {
    const out = io();
    const code = await runCli(
      ['asyncapi', '--service', join(ROOT, 'apps/order-service/src/asyncapi.ts')],
      out,
    );
    expect({ code, stderr: out.stderr() }).toEqual({ code: 0, stderr: '' });
    expect(out.stdout()).toBe(readFileSync(join(ROOT, 'docs/asyncapi/order-service.json'), 'utf8'));
  });

  it('writes --out and checks it with --validate', async () => {
    const out = io();
    const target = join(dir, 'shipping.json');
    const code = await runCli(
      [
        'asyncapi',
        '--service',
        join(dir, 'good.js'),
        '--export',
        'shipping',
        '--out',
        target,
        '--validate',
      ],
      out,
    );
    expect({ code, stderr: out.stderr(), stdout: out.stdout() }).toEqual({
      code: 0,
      stderr: `wrote ${target}\n`,
      stdout: '',
    });
    const doc = JSON.parse(readFileSync(target, 'utf8')) as { channels: object };
    expect(Object.keys(doc.channels)).toEqual(['parcels']);
  });

  it('exits 1 with the diagnostics when the document has an error', async () => {
    const out = io();
    const code = await runCli(['asyncapi', '--service', join(dir, 'bad.js'), '--validate'], out);
    expect(code).toBe(1);
    expect(out.stderr()).toMatch(/^asyncapi error: .*payload\/type: .*allowed values/m);
    expect(out.stderr()).toContain('sage: the AsyncAPI document of "shipping" has');
    expect(out.stdout()).toBe('');
  });

  it('names the exports when --export is not one, and the file when it cannot load', async () => {
    const out = io();
    expect(await runCli(['asyncapi', '--service', join(dir, 'good.js')], out)).toBe(1);
    expect(out.stderr()).toContain(
      'has no export "asyncapi" holding { id, version, publishes, consumes }; its exports: shipping (choose one with --export)',
    );
    const missing = io();
    expect(await runCli(['asyncapi', '--service', join(dir, 'nope.js')], missing)).toBe(1);
    expect(missing.stderr()).toMatch(/^sage: cannot load --service .*nope\.js: Cannot find module/);
  });

  it('needs --service (usage error, exit 2)', async () => {
    const out = io();
    expect(await runCli(['asyncapi'], out)).toBe(2);
    expect(out.stderr()).toContain('--service FILE is required');
  });

  it('says how to install @asyncapi/parser when --validate cannot load it (exit 2)', async () => {
    const out = io();
    let code: number | undefined;
    await jest.isolateModulesAsync(async () => {
      jest.doMock('@asyncapi/parser', () => {
        const error = new Error("Cannot find module '@asyncapi/parser'") as Error & {
          code: string;
        };
        error.code = 'MODULE_NOT_FOUND';
        throw error;
      });
      const cli = await import('../cli');
      code = await cli.runCli(['asyncapi', '--service', join(dir, 'bad.js'), '--validate'], out);
    });
    expect(code).toBe(2);
    expect(out.stderr()).toBe(
      'sage: sage asyncapi --validate needs @asyncapi/parser: npm install @asyncapi/parser\n',
    );
  });
});
