/**
 * scripts/secret-scan.sh (gitleaks with .gitleaks.toml) fails on a committed secret, prints it
 * redacted, and lets through only the reviewed placeholders and test fixtures. The secrets planted
 * here are made at test time: a literal one in this file would fail the repository's own scan.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const script = join(__dirname, '..', '..', 'scripts', 'secret-scan.sh');

interface ScanResult {
  code: number;
  output: string;
}

function scan(args: string[]): Promise<ScanResult> {
  return new Promise((resolve) => {
    execFile('bash', [script, ...args], { maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, output: `${stdout}\n${stderr}` });
    });
  });
}

/** A directory holding `files` (relative path → content), scanned with the repository's rules. */
async function scanFiles(files: Record<string, string>): Promise<ScanResult> {
  const dir = mkdtempSync(join(tmpdir(), 'sage-secret-scan-'));
  try {
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
    return await scan(['dir', dir]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
/** An AWS access key id's shape (`AKIA` + 16 base-32 characters), random, so never a real one. */
function fakeAwsKeyId(): string {
  return 'AKIA' + [...randomBytes(16)].map((b) => BASE32[b % 32]).join('');
}

beforeAll(async () => {
  // Builds gitleaks on the first run on a machine (about 30 s); later runs find it cached.
  const built = await scan(['path']);
  expect(built).toMatchObject({ code: 0 });
}, 300_000);

it('fails on an AWS key, a private key and a password in a URL, naming each without printing it', async () => {
  const awsKey = fakeAwsKeyId();
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const password = `pw-${randomBytes(12).toString('hex')}`;

  const result = await scanFiles({
    'deploy/aws.env': `AWS_ACCESS_KEY_ID=${awsKey}\n`,
    'certs/client.key': pem,
    'src/config.ts': `export const url = 'postgres://app:${password}@db.internal:5432/orders';\n`,
  });

  expect(result.code).toBe(1);
  expect(result.output).toContain('RuleID:      aws-access-token');
  expect(result.output).toContain('RuleID:      private-key');
  expect(result.output).toContain('RuleID:      sage-url-password');
  expect(result.output).toContain('File:        src/config.ts');
  expect(result.output).not.toContain(awsKey);
  expect(result.output).not.toContain(password);
  const keyBody = pem.split('\n').filter((line) => line && !line.startsWith('-----'));
  expect(keyBody.length).toBeGreaterThan(0);
  for (const line of keyBody) expect(result.output).not.toContain(line);
});

it('lets through the reviewed placeholders, the loopback dev credentials and URLs built from variables', async () => {
  const result = await scanFiles({
    'docs/setup.md': 'Set `DATABASE_URL=postgres://user:password@host:5432/db`.\n',
    'src/main.ts': [
      "const dev = 'postgres://sage:sage@127.0.0.1:54329/sage';",
      "const mq = 'amqp://guest:guest@127.0.0.1:5672';",
      'const url = `postgres://${user}:${encodeURIComponent(password)}@${host}/db`;',
      'const sh = "postgres://$PGUSER:$PGPASSWORD@localhost/db";',
      '',
    ].join('\n'),
  });
  expect(result).toMatchObject({ code: 0 });
});

it('allows the tests’ fake passwords in test files only', async () => {
  const line = "const url = 'nats://sage:s3cret-pw@127.0.0.1:4222';\n";
  await expect(scanFiles({ 'src/url.spec.ts': line })).resolves.toMatchObject({ code: 0 });
  const outside = await scanFiles({ 'src/url.ts': line });
  expect(outside.code).toBe(1);
  expect(outside.output).toContain('File:        src/url.ts');
  expect(outside.output).not.toContain('s3cret-pw');
});

it('still reports a real-looking password in a test file', async () => {
  const password = randomBytes(12).toString('hex');
  const result = await scanFiles({
    'src/url.spec.ts': `const url = 'amqps://orders:${password}@mq.internal:5671';\n`,
  });
  expect(result.code).toBe(1);
  expect(result.output).toContain('File:        src/url.spec.ts');
  expect(result.output).not.toContain(password);
});
