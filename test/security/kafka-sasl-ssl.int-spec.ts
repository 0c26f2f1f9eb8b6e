/**
 * Kafka over SASL_SSL, for real: a private KRaft Kafka (test/support/private-tls-brokers.ts) with a
 * SASL_SSL listener whose certificate comes from a test CA made by openssl now, SASL PLAIN and
 * SCRAM-SHA-256/512 users. The adapter publishes and consumes with each mechanism; a wrong CA, a
 * wrong password and a plaintext connection to the SASL_SSL port each fail with a clear error
 * that carries no secret; `sage-relay` publishes there from environment variables alone.
 */
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KafkaBroker, type KafkaBrokerOptions } from '@sage/saga-outbox/kafka';
import { waitUntil } from '@sage/saga-outbox/testing';
import { openOutboxTestContext, type OutboxTestContext } from '@test/support/outbox-test-support';
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import { PrivateSaslKafka } from '@test/support/private-tls-brokers';
import { startRelayProcess } from '@test/support/relay-process';
import { makeTestCa, type TestCa } from '@test/support/test-ca';

jest.setTimeout(120_000);

const { PLAIN_USER, PLAIN_PASSWORD, SCRAM_USER, SCRAM_PASSWORD } = PrivateSaslKafka;
let kafka: PrivateSaslKafka;
let otherCa: TestCa;
const brokers: KafkaBroker[] = [];

beforeAll(async () => {
  kafka = await PrivateSaslKafka.start();
  otherCa = await makeTestCa(join(kafka.dir, 'other-ca'), 'Some other CA');
});
afterEach(async () => {
  await Promise.all(brokers.splice(0).map((b) => b.close()));
});
afterAll(async () => {
  await kafka?.destroy();
});

function broker(options: Partial<KafkaBrokerOptions>): KafkaBroker {
  const b = new KafkaBroker({
    brokers: [kafka.saslBroker],
    ssl: { ca: kafka.ca.caCert },
    sasl: { mechanism: 'scram-sha-512', username: SCRAM_USER, password: SCRAM_PASSWORD },
    retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 500 },
    ...options,
  });
  brokers.push(b);
  return b;
}

function expectNoSecret(text: string): void {
  for (const secret of [PLAIN_PASSWORD, SCRAM_PASSWORD, 'wrong-password-xyz'])
    expect(text).not.toContain(secret);
  expect(text).not.toContain('PRIVATE KEY');
}

it.each([
  ['plain', PLAIN_USER, PLAIN_PASSWORD],
  ['scram-sha-256', SCRAM_USER, SCRAM_PASSWORD],
  ['scram-sha-512', SCRAM_USER, SCRAM_PASSWORD],
] as const)(
  'publishes and consumes over SASL_SSL with SASL %s',
  async (mechanism, username, password) => {
    const b = broker({ sasl: { mechanism, username, password } });
    expect(await b.probe(10_000)).toMatchObject({ up: true });
    const destination = `sasl-${mechanism}-${randomUUID()}`;
    const received: unknown[] = [];
    const sub = await b.subscribe(destination, (m) => {
      received.push(m.payload);
      return Promise.resolve();
    });
    const [result] = await b.publish([
      {
        id: randomUUID(),
        destination,
        type: 'sasl.test',
        key: 'k',
        payload: { mechanism },
        headers: {},
        time: new Date(),
      },
    ]);
    expect(result).toMatchObject({ ok: true });
    await waitUntil(() => received.length === 1, 'the message over SASL_SSL', 30_000);
    expect(received).toEqual([{ mechanism }]);
    await sub.unsubscribe();
  },
);

it.each([
  [
    'a CA that did not sign the server certificate',
    () => ({ ssl: { ca: otherCa.caCert } }),
    /unable to verify the first certificate \(the server's certificate is not signed by a CA this client trusts: set ssl\.ca to the CA that signed it\)/,
  ],
  [
    'a wrong SCRAM password',
    () => ({
      sasl: {
        mechanism: 'scram-sha-512' as const,
        username: SCRAM_USER,
        password: 'wrong-password-xyz',
      },
    }),
    /SASL SCRAM SHA512 authentication failed: .*invalid credentials.*\(check sasl\.mechanism, sasl\.username and sasl\.password/,
  ],
  [
    'a wrong PLAIN password',
    () => ({
      sasl: { mechanism: 'plain' as const, username: PLAIN_USER, password: 'wrong-password-xyz' },
    }),
    /SASL PLAIN authentication failed: Authentication failed: Invalid username or password \(check sasl\.mechanism/,
  ],
  [
    'plaintext to the SASL_SSL port',
    () => ({ ssl: undefined }),
    /\(if the listener expects TLS — SSL or SASL_SSL — set ssl\)/,
  ],
])('%s: refused, with a clear error and no secret', async (_case, options, says) => {
  const probe = await broker(options()).probe(10_000);
  expect(probe.up).toBe(false);
  expect(probe.detail).toContain(`cannot reach Kafka at ${kafka.saslBroker}: `);
  expect(probe.detail).toMatch(says);
  expectNoSecret(probe.detail ?? '');
});

describe('sage-relay from environment variables alone', () => {
  let db: TestDatabase;
  let ctx: OutboxTestContext;
  beforeAll(async () => {
    db = await createTestDatabase();
    ctx = await openOutboxTestContext(db.connection, 2);
  });
  afterAll(async () => {
    await ctx?.close();
    await db?.drop();
  });

  it('publishes over SASL_SSL (SCRAM-SHA-512) with SAGE_KAFKA_SSL_CA_FILE and SAGE_KAFKA_SASL_*', async () => {
    const destination = `relay-sasl-${randomUUID()}`;
    const consumer = broker({});
    const received: unknown[] = [];
    const sub = await consumer.subscribe(destination, (m) => {
      received.push(m.payload);
      return Promise.resolve();
    });
    const passwordFile = join(kafka.dir, 'relay-password');
    await writeFile(passwordFile, `${SCRAM_PASSWORD}\n`); // a mounted secret ends with a newline
    const c = db.connection;
    const relay = startRelayProcess({
      DATABASE_URL: `postgres://${c.user}:${c.password}@${c.host}:${c.port}/${c.database}`,
      SAGE_BROKER_URL: `kafka://${kafka.saslBroker}`,
      SAGE_KAFKA_SSL_CA_FILE: kafka.ca.paths.caCert,
      SAGE_KAFKA_SASL_MECHANISM: 'scram-sha-512',
      SAGE_KAFKA_SASL_USERNAME: SCRAM_USER,
      SAGE_KAFKA_SASL_PASSWORD_FILE: passwordFile,
    });
    try {
      await ctx.commit({ destination, type: 'relay.sasl', key: 'k', payload: { via: 'relay' } });
      await waitUntil(
        () => {
          if (relay.child.exitCode !== null)
            throw new Error(`relay exited (${relay.child.exitCode}):\n${relay.output()}`);
          return received.length === 1;
        },
        'the relay to publish over SASL_SSL',
        60_000,
        50,
      );
      expect(received).toEqual([{ via: 'relay' }]);
      expectNoSecret(relay.output());
    } finally {
      await relay.kill();
      await sub.unsubscribe();
    }
  });
});
