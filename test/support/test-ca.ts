/**
 * A throwaway certificate authority for TLS tests, made with `openssl` at test time (no key or
 * certificate is committed): a CA, a server certificate for 127.0.0.1 and localhost, and a client
 * certificate (CN `sage-client`) for mutual TLS, all signed by the CA.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestCa {
  /** PEM texts. */
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** The same, as files in the directory given to `makeTestCa`. */
  readonly paths: {
    readonly caCert: string;
    readonly caKey: string;
    readonly serverCert: string;
    readonly serverKey: string;
    readonly clientCert: string;
    readonly clientKey: string;
  };
}

/**
 * Creates the CA and certificates in `dir` (created if missing; files are world-readable so a
 * server running as another OS user, e.g. `postgres` under root, can read them — copy the key and
 * tighten its mode where a server insists, as PostgreSQL does).
 */
export async function makeTestCa(dir: string, name = 'Sage test CA'): Promise<TestCa> {
  await mkdir(dir, { recursive: true });
  const p = (file: string) => join(dir, file);
  const paths = {
    caCert: p('ca.crt'),
    caKey: p('ca.key'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
  };
  await openssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-keyout',
    paths.caKey,
    '-out',
    paths.caCert,
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await leaf(dir, paths, 'server', '127.0.0.1', [
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    'extendedKeyUsage=serverAuth',
  ]);
  await leaf(dir, paths, 'client', 'sage-client', ['extendedKeyUsage=clientAuth']);
  const read = (file: string) => readFile(file, 'utf8');
  return {
    caCert: await read(paths.caCert),
    serverCert: await read(paths.serverCert),
    serverKey: await read(paths.serverKey),
    clientCert: await read(paths.clientCert),
    clientKey: await read(paths.clientKey),
    paths,
  };
}

async function leaf(
  dir: string,
  paths: { caCert: string; caKey: string },
  kind: 'server' | 'client',
  commonName: string,
  extensions: string[],
): Promise<void> {
  const key = join(dir, `${kind}.key`);
  const csr = join(dir, `${kind}.csr`);
  const ext = join(dir, `${kind}.ext`);
  await openssl([
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    key,
    '-out',
    csr,
    '-subj',
    `/CN=${commonName}`,
  ]);
  await writeFile(ext, `${extensions.join('\n')}\n`);
  await openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    paths.caCert,
    '-CAkey',
    paths.caKey,
    '-CAcreateserial',
    '-days',
    '2',
    '-out',
    join(dir, `${kind}.crt`),
    '-extfile',
    ext,
  ]);
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args);
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    throw new Error(`openssl ${args[0]} failed: ${stderr ?? ''}`, { cause: error });
  }
}
