/**
 * RabbitMQ over TLS, for real: a private RabbitMQ (test/support/private-tls-brokers.ts) whose TLS
 * listener requires a client certificate of a test CA made by openssl now. The adapter publishes
 * and consumes over amqps:// with a CA and a client certificate; a wrong CA, no client
 * certificate, a wrong password and plain amqp:// to the TLS port each fail with a clear error
 * that carries no secret; `sage-relay` does the same from environment variables alone.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { RabbitMqBroker } from '@sage/saga-outbox/rabbitmq';
import { waitUntil } from '@sage/saga-outbox/testing';
import { openOutboxTestContext, type OutboxTestContext } from '@test/support/outbox-test-support';
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import { PrivateTlsRabbitMq } from '@test/support/private-tls-brokers';
import { startRelayProcess } from '@test/support/relay-process';
import { makeTestCa, type TestCa } from '@test/support/test-ca';

jest.setTimeout(120_000);

let rabbit: PrivateTlsRabbitMq;
let otherCa: TestCa;
const brokers: RabbitMqBroker[] = [];

beforeAll(async () => {
  rabbit = await PrivateTlsRabbitMq.start();
  otherCa = await makeTestCa(join(rabbit.dir, 'other-ca'), 'Some other CA');
});
afterEach(async () => {
  await Promise.all(brokers.splice(0).map((b) => b.close()));
});
afterAll(async () => {
  await rabbit?.destroy();
});

function broker(options: Partial<ConstructorParameters<typeof RabbitMqBroker>[0]>): RabbitMqBroker {
  const b = new RabbitMqBroker({
    url: rabbit.tlsUrl(),
    tls: { ca: rabbit.ca.caCert, cert: rabbit.ca.clientCert, key: rabbit.ca.clientKey },
    reconnectTimeInSeconds: 0.2,
    ...options,
  });
  brokers.push(b);
  return b;
}

/** No password, key or certificate text in `text`. */
function expectNoSecret(text: string): void {
  expect(text).not.toContain(PrivateTlsRabbitMq.PASSWORD);
  expect(text).not.toContain('PRIVATE KEY');
  expect(text).not.toContain('BEGIN CERTIFICATE');
}

it('publishes and consumes over amqps:// with a private CA and a client certificate', async () => {
  const b = broker({});
  expect(await b.probe(10_000)).toEqual({ up: true });
  const destination = `tls.${randomUUID()}`;
  const received: unknown[] = [];
  const sub = await b.subscribe(destination, (m) => {
    received.push(m.payload);
    return Promise.resolve();
  });
  const [result] = await b.publish([
    {
      id: randomUUID(),
      destination,
      type: 'tls.test',
      key: 'k',
      payload: { over: 'tls' },
      headers: {},
      time: new Date(),
    },
  ]);
  expect(result).toMatchObject({ ok: true });
  await waitUntil(() => received.length === 1, 'the message over TLS', 10_000);
  expect(received).toEqual([{ over: 'tls' }]);
  await sub.unsubscribe();
});

it.each([
  [
    'a CA that did not sign the server certificate',
    () => ({ tls: { ca: otherCa.caCert, cert: rabbit.ca.clientCert, key: rabbit.ca.clientKey } }),
    /self-signed certificate in certificate chain \(the server's certificate is not signed by a CA this client trusts: set tls\.ca to the CA that signed it\)/,
  ],
  [
    'no client certificate',
    () => ({ tls: { ca: rabbit.ca.caCert } }),
    /alert certificate required \(the server refused this client's certificate \(none given, or not signed by a CA it trusts\): set tls\.cert and tls\.key\)/,
  ],
  [
    'a wrong password',
    () => ({ url: rabbit.tlsUrl('wrong-password-xyz') }),
    /ACCESS_REFUSED - Login was refused .*\(check the user and password in the URL/,
  ],
  [
    'plain amqp:// to the TLS-only port',
    () => ({
      url: `amqp://sage:${PrivateTlsRabbitMq.PASSWORD}@127.0.0.1:${rabbit.tlsPort}`,
      tls: undefined,
    }),
    // The TLS listener drops the plain greeting: closed or reset, whichever the client sees first.
    /(Socket closed abruptly during opening handshake|read ECONNRESET) \(if the port expects TLS, use amqps:\/\//,
  ],
])('%s: refused, with a clear error and no secret', async (_case, options, says) => {
  const b = broker(options());
  const probe = await b.probe(10_000);
  expect(probe.up).toBe(false);
  expect(probe.detail).toContain(`cannot connect to RabbitMQ at 127.0.0.1:${rabbit.tlsPort}: `);
  expect(probe.detail).toMatch(says);
  expectNoSecret(probe.detail ?? '');
  expect(probe.detail).not.toContain('wrong-password-xyz');
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

  it('publishes to the TLS-only RabbitMQ with SAGE_RABBITMQ_TLS_*_FILE', async () => {
    const destination = `relay-tls.${randomUUID()}`;
    const consumer = broker({});
    const received: unknown[] = [];
    const sub = await consumer.subscribe(destination, (m) => {
      received.push(m.payload);
      return Promise.resolve();
    });
    const c = db.connection;
    const p = rabbit.ca.paths;
    const relay = startRelayProcess({
      DATABASE_URL: `postgres://${c.user}:${c.password}@${c.host}:${c.port}/${c.database}`,
      SAGE_BROKER_URL: rabbit.tlsUrl(),
      SAGE_RABBITMQ_TLS_CA_FILE: p.caCert,
      SAGE_RABBITMQ_TLS_CERT_FILE: p.clientCert,
      SAGE_RABBITMQ_TLS_KEY_FILE: p.clientKey,
    });
    try {
      await ctx.commit({ destination, type: 'relay.tls', key: 'k', payload: { via: 'relay' } });
      await waitUntil(
        () => {
          if (relay.child.exitCode !== null)
            throw new Error(`relay exited (${relay.child.exitCode}):\n${relay.output()}`);
          return received.length === 1;
        },
        'the relay to publish over TLS',
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

  it('without the client certificate: the relay says what to set, and never the password', async () => {
    const c = db.connection;
    const relay = startRelayProcess({
      DATABASE_URL: `postgres://${c.user}:${c.password}@${c.host}:${c.port}/${c.database}`,
      SAGE_BROKER_URL: rabbit.tlsUrl(),
      SAGE_RABBITMQ_TLS_CA_FILE: rabbit.ca.paths.caCert,
    });
    try {
      // A message to publish: its failure is logged with the connection's last error.
      await ctx.commit({ destination: 'relay-no-cert', type: 't', key: 'k', payload: {} });
      await waitUntil(
        () => /set tls\.cert and tls\.key/.test(relay.output()),
        'the relay to report the refused certificate',
        60_000,
        50,
      );
      expectNoSecret(relay.output());
    } finally {
      await relay.kill();
    }
  });
});
