/**
 * `sage-relay` configured from environment variables alone reaches a PostgreSQL that accepts only
 * TLS + SCRAM and a NATS that requires TLS + user/password (both private, certificates from a test
 * CA made now, secrets as mounted files), and delivers an outbox message. Secrets never reach its output.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EntityManager } from 'typeorm';
import type { PrivatePostgres } from '@test/support/private-postgres';
import { PrivateNats } from '@test/support/private-nats';
import { startTlsPostgres } from '@test/support/private-tls-postgres';
import { startRelayProcess, type RelayProcess } from '@test/support/relay-process';
import { makeTestCa, type TestCa } from '@test/support/test-ca';
import { NatsJetStreamBroker } from '../brokers/nats/nats-broker';
import type { DeliveredMessage } from '../core/ports/broker';
import { OutboxPublisher } from '../core/outbox/outbox-publisher';
import { createSagaDataSource } from '../persistence/postgres/data-source';
import { PostgresOutboxStore } from '../persistence/postgres/postgres-outbox-store';
import { waitUntil } from '../testing/async';

jest.setTimeout(90_000);

const NATS_PASSWORD = 'relay-nats-secret-pw';

describe('sage-relay over TLS from environment variables', () => {
  let dir: string;
  let ca: TestCa;
  let pg: PrivatePostgres;
  let nats: PrivateNats;
  let relay: RelayProcess | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sage-relay-tls-'));
    ca = await makeTestCa(join(dir, 'ca'));
    pg = await startTlsPostgres(ca);
    nats = await PrivateNats.start(
      join(dir, 'nats'),
      `tls { cert_file: ${JSON.stringify(ca.paths.serverCert)}, key_file: ${JSON.stringify(ca.paths.serverKey)}, ca_file: ${JSON.stringify(ca.paths.caCert)}, timeout: 2 }\n` +
        `authorization { users = [ { user: relay, password: ${JSON.stringify(NATS_PASSWORD)} } ] }`,
    );
  }, 60_000);
  afterAll(async () => {
    await relay?.kill();
    await nats?.stop();
    await pg?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('delivers an outbox message; no secret in its output', async () => {
    await writeFile(join(dir, 'pg-password'), 'sage\n');
    await writeFile(join(dir, 'nats-password'), `${NATS_PASSWORD}\n`);
    relay = startRelayProcess({
      DATABASE_URL: `postgres://sage@127.0.0.1:${pg.port}/sage`,
      SAGE_DB_PASSWORD_FILE: join(dir, 'pg-password'),
      SAGE_DB_SSL_CA_FILE: ca.paths.caCert,
      SAGE_BROKER_URL: `tls://127.0.0.1:${nats.port}`,
      SAGE_NATS_TLS_CA_FILE: ca.paths.caCert,
      SAGE_NATS_USER: 'relay',
      SAGE_NATS_PASSWORD_FILE: join(dir, 'nats-password'),
      SAGE_RUN_MIGRATIONS: 'true',
      SAGE_DB_RETRY_ATTEMPTS: '0',
    });
    const current = relay;
    await waitUntil(
      () => current.output().includes('outbox relay running') || current.child.exitCode !== null,
      'the relay to start',
      60_000,
      100,
    );
    expect(current.output()).toContain('outbox relay running');

    const consumer = new NatsJetStreamBroker({
      servers: `nats://127.0.0.1:${nats.port}`,
      tls: { ca: ca.caCert },
      user: 'relay',
      password: NATS_PASSWORD,
    });
    const got: DeliveredMessage[] = [];
    const destination = `relay-tls-${randomUUID().slice(0, 8)}`;
    const sub = await consumer.subscribe(destination, (m) => {
      got.push(m);
      return Promise.resolve();
    });
    const ds = createSagaDataSource({
      host: '127.0.0.1',
      port: pg.port,
      username: 'sage',
      password: 'sage',
      database: 'sage',
      ssl: { ca: ca.caCert },
      poolSize: 1,
    });
    await ds.initialize();
    try {
      const publisher = new OutboxPublisher<EntityManager>({ writer: new PostgresOutboxStore(ds) });
      const [id] = await ds.transaction((manager) =>
        publisher.publish(
          { destination, type: 'relay.tls', payload: { over: 'tls' } },
          { manager },
        ),
      );
      await waitUntil(() => got.some((m) => m.id === id), 'the message through NATS', 30_000, 50);
    } finally {
      await sub.unsubscribe();
      await consumer.close();
      await ds.destroy();
    }
    expect(current.output()).not.toContain(NATS_PASSWORD);
    expect(current.output()).not.toContain('PRIVATE KEY');
  });
});
