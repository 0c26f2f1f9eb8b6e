/**
 * Personal data across the two sample services and a real RabbitMQ: order-service encrypts the
 * customer's name, e-mail and card token per customer (saga input, `payment.authorize`,
 * `order.confirmed`); payment-service decrypts the command with the shared keys. Checked end to
 * end: handlers get plaintext; no table of either database and no message as RabbitMQ stored it
 * holds the values in clear; a ciphertext moved to another saga fails to decrypt; `sage gdpr
 * export` returns exactly one customer's data; `sage gdpr erase` shreds that customer everywhere
 * (saga state, outbox, broker copies), a command for them delivered afterwards is dead-lettered
 * as unreadable, and the other customer's data still decrypts.
 */
import { DataUnreadableError, isSealedValue, SagaService } from '@sage/saga-outbox';
import { connect, type ChannelModel } from 'amqplib';
import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { runCli } from '../../libs/saga-outbox/src/cli/cli';
import { allRows } from './database-dump';
import { databaseUrl, orderBody, SampleApps } from './sample-apps';

jest.setTimeout(40_000);

const rabbitUrl = process.env.SAGE_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const run = `${process.pid}-${randomBytes(3).toString('hex')}`;
/** An exchange of this run only: the raw capture below sees every message the services publish. */
const exchange = `e2e-dp-${run}`;

/** A customer whose personal values are unique to this run (so a scan cannot match by chance). */
const customer = (label: string) => {
  const tag = randomBytes(4).toString('hex');
  return {
    customer: {
      id: `cus-${label}-${tag}`,
      name: `${label} Name${tag}`,
      email: `${label}${tag}@example.com`,
    },
    paymentMethod: { token: `tok_${label}_${tag}`, last4: '4242' },
  };
};
const ada = customer('ada');
const bob = customer('bob');
const secretsOf = (c: typeof ada) => [c.customer.name, c.customer.email, c.paymentMethod.token];

interface RawMessage {
  routingKey: string;
  headers: Record<string, unknown>;
  body: string;
}

describe('sample apps: personal data encrypted, exported and erased', () => {
  const apps = new SampleApps({
    label: 'dp',
    broker: `${rabbitUrl}?exchange=${encodeURIComponent(exchange)}`,
    payment: { replyTimeoutMs: 10_000, maxAttempts: 2 },
    // Every decryption asks the key store: an erasure is seen at once by both services.
    subjectKeyCacheMs: 0,
  });
  let raw: ChannelModel;
  const captured: RawMessage[] = [];
  let paymentData: DataSource;
  let env: NodeJS.ProcessEnv;
  const sagaIds = new Map<string, string>();

  /** `sage …` against order-service's database (its saga state, outbox and data-subject keys). */
  const sage = async (argv: string[]) => {
    let stdout = '';
    let stderr = '';
    const code = await runCli(argv, {
      env,
      out: (t) => void (stdout += t),
      err: (t) => void (stderr += t),
    });
    return { code, stdout, stderr };
  };

  const place = async (who: typeof ada): Promise<string> => {
    const res = await apps.placeOrder(orderBody(who));
    expect(res.status).toBe(202);
    return ((await res.json()) as { orderId: string }).orderId;
  };

  const waitFor = async (what: string, done: () => boolean | Promise<boolean>) => {
    const deadline = Date.now() + 15_000;
    while (!(await done())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  /** Raw copies of an order's messages, as RabbitMQ delivered them (bytes, not through Sage). */
  const copiesOf = (orderId: string) => captured.filter((m) => m.body.includes(orderId));

  /** The data-subject key ids the envelopes of a JSON text name (`"key": "s:<id>"`). */
  const subjectKeyIds = (text: string): string[] => [
    ...new Set([...text.matchAll(/"key": ?"s:([0-9a-f-]{36})"/g)].map((m) => m[1]!)),
  ];
  const storedKeyIds = async (): Promise<Set<string>> =>
    new Set(
      (
        (await apps.orderData.query(`SELECT id::text AS id FROM sage.subject_key`)) as {
          id: string;
        }[]
      ).map((r) => r.id),
    );

  beforeAll(async () => {
    // Bound to the exchange before anything is published: every message the services send lands
    // here too, as RabbitMQ stores it.
    raw = await connect(rabbitUrl);
    const channel = await raw.createChannel();
    await channel.assertExchange(exchange, 'topic', { durable: true });
    const { queue } = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(queue, exchange, '#');
    await channel.consume(
      queue,
      (m) => {
        if (m)
          captured.push({
            routingKey: m.fields.routingKey,
            headers: (m.properties.headers ?? {}) as Record<string, unknown>,
            body: m.content.toString('utf8'),
          });
      },
      { noAck: true },
    );
    await apps.start();
    await apps.orderData.query(`INSERT INTO orders.stock (sku, available) VALUES ('widget', 100)`);
    paymentData = new DataSource({ type: 'postgres', url: databaseUrl(apps.paymentDb) });
    await paymentData.initialize();
    env = {
      DATABASE_URL: databaseUrl(apps.orderDb),
      SAGE_ENCRYPTION_KEYS: `e2e=${Buffer.from(apps.encryptionKeys.key('e2e')!).toString('base64')}`,
    };
  }, 60_000);

  afterAll(async () => {
    await paymentData?.destroy();
    await apps.stop();
    if (raw) {
      const channel = await raw.createChannel();
      await channel.deleteExchange(exchange).catch(() => undefined);
      await channel.deleteExchange(`${exchange}.dlx`).catch(() => undefined);
      await raw.close();
    }
  }, 30_000);

  it('orders complete (payment-service read the token) and nothing personal is stored or sent in clear', async () => {
    for (const who of [ada, bob]) {
      const orderId = await place(who);
      const settled = await apps.settled(orderId);
      // authorize-payment succeeded: payment-service got the plain token (it refuses anything else).
      expect(settled.saga.status).toBe('completed');
      expect(settled.saga.input).toMatchObject(who);
      sagaIds.set(who.customer.id, settled.saga.id);
      // payment.authorize and order.confirmed went through RabbitMQ (each names the order in clear).
      await waitFor(`${orderId}'s messages on the broker`, () => copiesOf(orderId).length >= 2);
    }

    const dumps = [
      ...(await allRows(apps.orderData)).entries(),
      ...(await allRows(paymentData)).entries(),
    ].flatMap(([table, rows]) => rows.map((row) => `${table}: ${row}`));
    const brokerCopies = captured.map(
      (m) => `${m.routingKey}: ${JSON.stringify(m.headers)} ${m.body}`,
    );
    for (const secret of [...secretsOf(ada), ...secretsOf(bob)]) {
      expect(dumps.filter((row) => row.includes(secret))).toEqual([]);
      expect(brokerCopies.filter((m) => m.includes(secret))).toEqual([]);
    }
    // The scans see what they look for: the rows and the messages are there, with envelopes in
    // place of the values.
    for (const who of [ada, bob]) {
      const inputs = dumps.filter(
        (r) => r.startsWith('sage.saga_instance:') && r.includes(who.customer.id),
      );
      expect(inputs).toHaveLength(1);
      expect(inputs[0]).toContain('"sage:enc": "v1"');
    }
    const encrypted = captured.filter((m) => m.body.includes('"sage:enc"'));
    expect(encrypted.length).toBeGreaterThanOrEqual(4); // two payment.authorize, two order.confirmed
    for (const m of encrypted) expect(JSON.stringify(m.headers)).toContain('sage-encrypted');
  });

  it('a ciphertext copied from one saga row to another does not decrypt there (tampered)', async () => {
    const [adaSaga, bobSaga] = [sagaIds.get(ada.customer.id)!, sagaIds.get(bob.customer.id)!];
    const [{ input: original }] = (await apps.orderData.query(
      `SELECT input FROM sage.saga_instance WHERE id = $1`,
      [bobSaga],
    )) as [{ input: { customer: { email: unknown } } }];
    const [{ email }] = (await apps.orderData.query(
      `SELECT input->'customer'->'email' AS email FROM sage.saga_instance WHERE id = $1`,
      [adaSaga],
    )) as [{ email: unknown }];
    expect(isSealedValue(email)).toBe(true);
    await apps.orderData.query(
      `UPDATE sage.saga_instance SET input = jsonb_set(input, '{customer,email}', $2::jsonb) WHERE id = $1`,
      [bobSaga, JSON.stringify(email)],
    );
    try {
      const error = await apps.order
        .get(SagaService)
        .get(bobSaga)
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(error).toBeInstanceOf(DataUnreadableError);
      expect(error).toMatchObject({ code: 'DATA_UNREADABLE', reason: 'tampered' });
    } finally {
      await apps.orderData.query(`UPDATE sage.saga_instance SET input = $2::jsonb WHERE id = $1`, [
        bobSaga,
        JSON.stringify(original),
      ]);
    }
    expect((await apps.order.get(SagaService).get(bobSaga)).input).toMatchObject(bob);
  });

  it('sage gdpr export returns exactly the customer’s readable data', async () => {
    const { code, stdout, stderr } = await sage(['gdpr', 'export', ada.customer.id]);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    for (const secret of secretsOf(bob)) expect(stdout).not.toContain(secret);
    expect(stdout).not.toContain(bob.customer.id);
    const exported = JSON.parse(stdout) as {
      subjectId: string;
      sagas: { id: string; input: unknown }[];
      outboxMessages: { type: string; payload: Record<string, unknown> }[];
      unreadable: unknown[];
    };
    expect(exported.subjectId).toBe(ada.customer.id);
    expect(exported.sagas.map((s) => s.id)).toEqual([sagaIds.get(ada.customer.id)]);
    expect(exported.sagas[0]!.input).toMatchObject(ada);
    expect(exported.outboxMessages.map((m) => m.type).sort()).toEqual([
      'order.confirmed',
      'payment.authorize',
    ]);
    for (const m of exported.outboxMessages)
      expect(m.payload).toMatchObject(
        m.type === 'order.confirmed'
          ? { customer: ada.customer }
          : { customerId: ada.customer.id, paymentMethod: ada.paymentMethod },
      );
    expect(exported.unreadable).toEqual([]);
  });

  it('sage gdpr erase shreds the customer everywhere, the other still decrypts, a late command is dead-lettered', async () => {
    const sagas = apps.order.get(SagaService);
    // A command for Ada waits on RabbitMQ while payment-service is down; she is erased meanwhile.
    await apps.stopPayment();
    const lateOrder = await place(ada);
    await waitFor('the late payment.authorize on the broker', () =>
      copiesOf(lateOrder).some((m) => m.body.includes('paymentMethod')),
    );
    const adaKeys = subjectKeyIds(
      copiesOf(lateOrder)
        .map((m) => m.body)
        .join('\n'),
    );
    expect(adaKeys).toHaveLength(1);

    const refused = await sage(['gdpr', 'erase', ada.customer.id, '--yes']);
    expect(refused.code).toBe(1); // her late order's saga is unfinished
    const erased = await sage(['gdpr', 'erase', ada.customer.id, '--yes', '--force', '--json']);
    expect(erased).toMatchObject({ code: 0, stderr: '' });
    expect((JSON.parse(erased.stdout) as { erasedKeyIds: string[] }).erasedKeyIds).toEqual(adaKeys);

    // Her saga state: unreadable (subject-erased); Bob's: still decrypts.
    await expect(sagas.get(sagaIds.get(ada.customer.id)!)).rejects.toMatchObject({
      code: 'DATA_UNREADABLE',
      reason: 'subject-erased',
    });
    expect((await sagas.get(sagaIds.get(bob.customer.id)!)).input).toMatchObject(bob);

    // Her outbox rows and every raw broker copy name a key that no longer exists; Bob's key does.
    const keys = await storedKeyIds();
    const outbox = (await apps.orderData.query(
      `SELECT payload::text AS payload FROM sage.outbox_message`,
    )) as { payload: string }[];
    const idsIn = (texts: string[], subject: string) =>
      subjectKeyIds(texts.filter((t) => t.includes(subject)).join('\n'));
    const bobCopies = captured.filter((m) => m.body.includes(bob.customer.id)).map((m) => m.body);
    const adaCopies = captured.filter((m) => m.body.includes(ada.customer.id)).map((m) => m.body);
    expect(
      idsIn(
        outbox.map((r) => r.payload),
        ada.customer.id,
      ),
    ).toEqual(adaKeys);
    expect(subjectKeyIds(adaCopies.join('\n'))).toEqual(adaKeys);
    expect(keys.has(adaKeys[0]!)).toBe(false);
    const bobKeys = subjectKeyIds(bobCopies.join('\n'));
    expect(bobKeys).toHaveLength(1);
    expect(keys.has(bobKeys[0]!)).toBe(true);
    // Export: nothing of Ada is readable any more; Bob's outbox messages still decrypt.
    const adaExport = JSON.parse((await sage(['gdpr', 'export', ada.customer.id])).stdout) as {
      sagas: unknown[];
      outboxMessages: unknown[];
    };
    expect([adaExport.sagas, adaExport.outboxMessages]).toEqual([[], []]);
    const bobExport = JSON.parse((await sage(['gdpr', 'export', bob.customer.id])).stdout) as {
      outboxMessages: { payload: unknown }[];
      unreadable: unknown[];
    };
    expect(bobExport.unreadable).toEqual([]);
    expect(bobExport.outboxMessages).toHaveLength(2);
    expect(JSON.stringify(bobExport.outboxMessages)).toContain(bob.paymentMethod.token);

    // payment-service back: the waiting command for Ada cannot be decrypted: dead-lettered, not handled.
    await apps.startPayment();
    let deadLetter: { status: string; last_error: string } | undefined;
    await waitFor('the late command dead-lettered', async () => {
      [deadLetter] = (await paymentData.query(
        `SELECT status, last_error FROM payment_sage.inbox_message
          WHERE consumer = $1 AND message::text LIKE $2`,
        [apps.topology.paymentConsumer, `%${lateOrder}%`],
      )) as { status: string; last_error: string }[];
      return deadLetter !== undefined;
    });
    expect(deadLetter!.status).toBe('dead_letter');
    // DataUnreadableError's text (the dead letter keeps the message, not the error code).
    expect(deadLetter!.last_error).toMatch(
      /^subject-erased: the encrypted value at message\/[^ ]+\/payment\.authorize \/paymentMethod\/token cannot be read/,
    );
    expect(await apps.authorizations(lateOrder)).toEqual([]);
    // Bob orders again after the erasure: his data still flows and decrypts.
    const bobAgain = await place(bob);
    expect((await apps.settled(bobAgain)).saga.status).toBe('completed');
  });
});
