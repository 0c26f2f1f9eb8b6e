/**
 * A private PostgreSQL that accepts TCP clients only over TLS (`hostssl … scram-sha-256`, no
 * `host` line), with a server certificate from a test CA made at test time. It is PrivatePostgres
 * (role sage/sage, database sage, SCRAM passwords) reconfigured after start and reloaded:
 * scripts/services.sh rewrites pg_hba.conf on each start, so this server must not be restarted.
 */
import { copyFile, chmod, chown, stat, appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client } from 'pg';
import { PrivatePostgres } from './private-postgres';
import type { TestCa } from './test-ca';

export async function startTlsPostgres(ca: TestCa): Promise<PrivatePostgres> {
  const server = await PrivatePostgres.start();
  try {
    const data = join(server.dir, 'postgres', 'data');
    const owner = await stat(data);
    for (const [from, to] of [
      [ca.paths.serverCert, 'server.crt'],
      [ca.paths.serverKey, 'server.key'],
      [ca.paths.caCert, 'root.crt'],
    ] as const) {
      await copyFile(from, join(data, to));
      await chown(join(data, to), owner.uid, owner.gid);
      await chmod(join(data, to), 0o600);
    }
    // After `include 'sage.conf'`: these win.
    await appendFile(
      join(data, 'postgresql.conf'),
      "\n# TLS test server\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'root.crt'\n",
    );
    await writeFile(
      join(data, 'pg_hba.conf'),
      'local all all peer\nhostssl all all 127.0.0.1/32 scram-sha-256\n',
    );
    const client = new Client(server.connection);
    await client.connect();
    try {
      await client.query('SELECT pg_reload_conf()');
    } finally {
      await client.end();
    }
    // The postmaster reloads asynchronously: wait until a TLS connection is accepted.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const tls = new Client({ ...server.connection, ssl: { ca: ca.caCert } });
      try {
        await tls.connect();
        await tls.end();
        return server;
      } catch (error) {
        await tls.end().catch(() => undefined);
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } catch (error) {
    await server.destroy();
    throw error;
  }
}
