import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createUser } from '@nats-io/nkeys';
import { SENT_MESSAGE } from '@test/support/broker-message-fixture';
import { PrivateNats } from '@test/support/private-nats';
import { makeTestCa, type TestCa } from '@test/support/test-ca';
import { InvalidOptionsError } from '../../core/errors';
import type { DeliveredMessage } from '../../core/ports/broker';
import { brokerFromUrl } from '../../nest/relay/broker-url';
import { NatsJetStreamBroker, type NatsJetStreamBrokerOptions } from './nats-broker';

// Private nats-servers on loopback requiring TLS (certificates from a test CA made now) and auth.
const PASSWORD = 'alice-secret-pw';
const TOKEN = 'token-secret-value';
const nkey = createUser();
const SEED = new TextDecoder().decode(nkey.getSeed());

let dir: string;
let ca: TestCa;
let otherCa: TestCa;
let users: PrivateNats;
let tokens: PrivateNats;
const brokers: NatsJetStreamBroker[] = [];

const tlsBlock = () =>
  `tls { cert_file: ${JSON.stringify(ca.paths.serverCert)}, key_file: ${JSON.stringify(ca.paths.serverKey)}, ca_file: ${JSON.stringify(ca.paths.caCert)}, timeout: 2 }`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sage-nats-tls-'));
  ca = await makeTestCa(join(dir, 'ca'));
  otherCa = await makeTestCa(join(dir, 'other'), 'Some other CA');
  users = await PrivateNats.start(
    join(dir, 'users'),
    `${tlsBlock()}\nauthorization { users = [ { user: alice, password: ${JSON.stringify(PASSWORD)} }, { nkey: ${nkey.getPublicKey()} } ] }`,
  );
  tokens = await PrivateNats.start(
    join(dir, 'tokens'),
    `${tlsBlock()}\nauthorization { token: ${JSON.stringify(TOKEN)} }`,
  );
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(brokers.map((b) => b.close()));
  await users?.stop();
  await tokens?.stop();
  await rm(dir, { recursive: true, force: true });
});

function broker(
  server: PrivateNats,
  options: Partial<NatsJetStreamBrokerOptions>,
): NatsJetStreamBroker {
  const b = new NatsJetStreamBroker({
    servers: `nats://127.0.0.1:${server.port}`,
    publishTimeoutMs: 3_000,
    ...options,
  });
  brokers.push(b);
  return b;
}

/** Publishes one message and receives it back through a subscription. */
async function roundTrip(b: NatsJetStreamBroker): Promise<void> {
  const destination = `tls-${randomUUID().slice(0, 8)}`;
  const got: DeliveredMessage[] = [];
  const sub = await b.subscribe(destination, (m) => {
    got.push(m);
    return Promise.resolve();
  });
  try {
    const id = randomUUID();
    expect(await b.publish([{ ...SENT_MESSAGE, id, destination }])).toEqual([{ id, ok: true }]);
    const deadline = Date.now() + 10_000;
    while (!got.some((m) => m.id === id) && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 50));
    expect(got.map((m) => m.id)).toContain(id);
  } finally {
    await sub.unsubscribe();
  }
}

/** The error a subscribe meets (the connection fails first), as text with its causes. */
async function failure(b: NatsJetStreamBroker): Promise<string> {
  const error = await b
    .subscribe('never', () => Promise.resolve())
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  expect(error).toBeDefined();
  return `${(error as Error).message} ${(error as Error).stack ?? ''}`;
}

describe('NATS with TLS and authentication (private servers)', () => {
  it('TLS (CA as PEM text) + user/password: publishes and consumes', async () => {
    await roundTrip(broker(users, { tls: { ca: ca.caCert }, user: 'alice', password: PASSWORD }));
  });

  it('TLS (CA file) + a password function + mutual TLS client certificate', async () => {
    await roundTrip(
      broker(users, {
        tls: {
          caFile: ca.paths.caCert,
          certFile: ca.paths.clientCert,
          keyFile: ca.paths.clientKey,
        },
        user: 'alice',
        password: () => PASSWORD,
      }),
    );
  });

  it('TLS + NKEY seed', async () => {
    await roundTrip(broker(users, { tls: { ca: Buffer.from(ca.caCert) }, nkeySeed: SEED }));
  });

  it('TLS + token, and tls:// URLs with credentials through brokerFromUrl', async () => {
    await roundTrip(broker(tokens, { tls: { ca: ca.caCert }, token: TOKEN }));
    const fromUrl = brokerFromUrl(
      `tls://alice:${PASSWORD}@127.0.0.1:${users.port}?stream=SAGE_URL&prefix=fromurl.`,
      'SAGE_BROKER_URL',
      undefined,
      { nats: { tls: { ca: ca.caCert } } },
    ) as NatsJetStreamBroker;
    brokers.push(fromUrl);
    await roundTrip(fromUrl);
  });

  it('a server certificate from another CA fails clearly', async () => {
    const text = await failure(
      broker(users, { tls: { ca: otherCa.caCert }, user: 'alice', password: PASSWORD }),
    );
    expect(text).toMatch(/unable to verify the first certificate|self[- ]signed certificate/);
    // Which option fixes it, in the adapter's terms.
    expect(text).toContain('not signed by a CA this client trusts: set nats.tls.ca');
    expect(text).not.toContain(PASSWORD);
  });

  it('a wrong password fails clearly, never showing it', async () => {
    const wrong = 'wrong-password-value';
    const text = await failure(
      broker(users, { tls: { ca: ca.caCert }, user: 'alice', password: wrong }),
    );
    expect(text).toMatch(/Authorization Violation/i);
    expect(text).not.toContain(wrong);
  });

  it('a client without TLS settings to the TLS-only server is refused (the test CA is not trusted)', async () => {
    const text = await failure(broker(tokens, { token: TOKEN }));
    expect(text).toMatch(/unable to verify the first certificate|self[- ]signed certificate/);
    expect(text).toContain('set nats.tls.ca');
    expect(text).not.toContain(TOKEN);
  });

  it('credentials in a server URL, or two ways of authenticating: InvalidOptionsError, never the secret', () => {
    const inUrl = () =>
      new NatsJetStreamBroker({ servers: `nats://alice:${PASSWORD}@127.0.0.1:4222` });
    expect(inUrl).toThrow(InvalidOptionsError);
    expect(inUrl).toThrow(/must not hold credentials .*nats\.user \/ nats\.password/);
    expect(
      () =>
        new NatsJetStreamBroker({
          servers: 'nats://h',
          user: 'a',
          password: PASSWORD,
          token: TOKEN,
        }),
    ).toThrow(
      'Invalid Sage option "nats": give one way of authenticating, not user/password and token',
    );
    expect(() => new NatsJetStreamBroker({ servers: 'nats://h', nkeySeed: 'nope' })).toThrow(
      'Invalid Sage option "nats.nkeySeed": must be a user NKEY seed (starts with "SU"); the value is not shown',
    );
    expect(
      () => new NatsJetStreamBroker({ servers: 'nats://h', tls: { cert: ca.clientCert } }),
    ).toThrow(
      'Invalid Sage option "nats.tls.key": a client certificate needs its private key (key or keyFile)',
    );
    expect(() =>
      brokerFromUrl(`nats://alice:${PASSWORD}@h:4222`, 'SAGE_BROKER_URL', undefined, {
        nats: { token: TOKEN },
      }),
    ).toThrow(/holds NATS credentials and NATS credentials are also given separately/);
  });
});
