/**
 * order-service and payment-service end to end over each real broker: two Nest apps in this
 * process, each on its own database, talking only through the broker (payment commands through
 * order-service's outbox, replies through payment-service's outbox), with names unique to the run.
 */
import { Kafka, logLevel } from 'kafkajs';
import type { SampleTopology } from '../../apps/shared/sample-topology';
import { DECLINED_CARD, orderBody, SampleApps, stepOf } from './sample-apps';

const brokers: [string, string][] = [
  ['Kafka', `kafka://${process.env.SAGE_KAFKA_BROKERS ?? '127.0.0.1:9092'}`],
  ['RabbitMQ', process.env.SAGE_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672'],
  ['NATS JetStream', process.env.SAGE_NATS_URL ?? 'nats://127.0.0.1:4222'],
];

// Per attempt: long enough for a consumer joining its group (Kafka's rebalance takes seconds),
// short enough to see resends and the final timeout quickly.
const REPLY_TIMEOUT_MS = 3_000;
const MAX_ATTEMPTS = 3;

/**
 * Kafka: the run's topics are created up front, as a deployment provisions them. (Subscribing to a
 * topic that only auto-creation would make fails while its partition has no leader yet.)
 */
async function provisionKafkaTopics(url: string, topology: SampleTopology): Promise<void> {
  const admin = new Kafka({
    brokers: url.replace('kafka://', '').split(','),
    clientId: 'sage-e2e',
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: [topology.paymentCommands, topology.orderReplies, topology.orderEvents].map(
        (topic) => ({ topic, numPartitions: 1 }),
      ),
    });
  } finally {
    await admin.disconnect();
  }
}

describe.each(brokers)('order-service ⇄ payment-service over %s', (label, url) => {
  const apps = new SampleApps({
    label: label.split(' ')[0]!.toLowerCase(),
    broker: url,
    payment: { replyTimeoutMs: REPLY_TIMEOUT_MS, maxAttempts: MAX_ATTEMPTS },
  });
  let n = 0;
  const order = orderBody;
  const place = async (body: unknown): Promise<string> => {
    const res = await apps.placeOrder(body, `${label.split(' ')[0]}-${++n}`);
    expect(res.status).toBe(202);
    return ((await res.json()) as { orderId: string }).orderId;
  };
  const stock = async (): Promise<number> => {
    const [row] = (await apps.orderData.query(
      `SELECT available FROM orders.stock WHERE sku = 'widget'`,
    )) as { available: number }[];
    return row!.available;
  };

  beforeAll(async () => {
    if (url.startsWith('kafka://')) await provisionKafkaTopics(url, apps.topology);
    await apps.start();
    await apps.orderData.query(`INSERT INTO orders.stock (sku, available) VALUES ('widget', 100)`);
  }, 60_000);

  afterAll(() => apps.stop(), 30_000);

  it('happy path: the order completes and the payment is authorized once', async () => {
    const orderId = await place(order());
    const view = await apps.settled(orderId);
    expect(view.saga.status).toBe('completed');
    expect(view.order.status).toBe('confirmed');
    expect(view.saga.steps.every((s) => s.status === 'completed')).toBe(true);
    const auths = await apps.authorizations(orderId);
    expect(auths).toHaveLength(1);
    expect(auths[0]).toMatchObject({ status: 'authorized' });
    // The step's result is payment-service's answer.
    expect(stepOf(view, 'authorize-payment').result).toEqual({
      authorization: auths[0]!.authorization_id,
    });
    expect(await stock()).toBe(99);
  }, 30_000);

  it('declined card: the order is compensated and nothing is authorized', async () => {
    const orderId = await place(order({ paymentMethod: DECLINED_CARD }));
    const view = await apps.settled(orderId);
    expect(view.saga.status).toBe('compensated');
    expect(view.saga.error).toMatch(/authorize-payment.*declined/);
    expect(view.order.status).toBe('cancelled');
    const auths = await apps.authorizations(orderId);
    expect(auths.map((a) => a.status)).toEqual(['declined']);
    expect(auths[0]!.authorization_id).toBeNull();
    expect(await stock()).toBe(99);
  }, 30_000);

  it('payment-service down: the saga waits, resends, times out and is compensated once it is back for the void', async () => {
    await apps.stopPayment();
    const orderId = await place(order());
    const waiting = await apps.until(
      orderId,
      (v) => v.saga.status === 'waiting' && stepOf(v, 'authorize-payment').status === 'waiting',
    );
    expect(stepOf(waiting, 'reserve-stock').status).toBe('completed');
    // No reply within the timeout: the command is sent again (same idempotency key).
    await apps.until(
      orderId,
      (v) => stepOf(v, 'authorize-payment').attempts >= 2,
      2 * REPLY_TIMEOUT_MS + 5_000,
    );
    // ...until the attempts are used up: timed out (outcome unknown), so compensated with payment.void.
    // The step's verdict and the saga's turn to compensating are two transactions: wait for both.
    const timedOut = await apps.until(
      orderId,
      (v) =>
        ['timed_out', 'compensating'].includes(stepOf(v, 'authorize-payment').status) &&
        v.saga.status !== 'running',
      MAX_ATTEMPTS * REPLY_TIMEOUT_MS + 5_000,
    );
    expect(timedOut.saga.status).toBe('compensating');
    expect(stepOf(timedOut, 'authorize-payment').attempts).toBe(MAX_ATTEMPTS);
    expect(await apps.authorizations(orderId)).toEqual([]);
    // payment-service comes back: it takes the queued authorize commands and the void, in order.
    await apps.startPayment();
    const view = await apps.settled(orderId, 30_000);
    expect(view.saga.status).toBe('compensated');
    expect(view.saga.error).toMatch(/authorize-payment/);
    expect(stepOf(view, 'authorize-payment').status).toBe('compensated');
    expect(view.order.status).toBe('cancelled');
    expect(await stock()).toBe(99);
    // Whatever arrived first, no authorization stands: voided, or a tombstone that refused it.
    const auths = await apps.authorizations(orderId);
    expect(auths).toHaveLength(1);
    expect(['voided', 'tombstone']).toContain(auths[0]!.status);
  }, 60_000);

  it('payment-service back before the final timeout: the saga completes with one authorization', async () => {
    await apps.stopPayment();
    const received = await apps.paymentCommandsReceived();
    const orderId = await place(order());
    // The first attempt timed out and the command was resent while payment-service was down.
    await apps.until(
      orderId,
      (v) => stepOf(v, 'authorize-payment').attempts >= 2,
      2 * REPLY_TIMEOUT_MS + 5_000,
    );
    await apps.startPayment();
    const view = await apps.settled(orderId, 30_000);
    expect(view.saga.status).toBe('completed');
    expect(view.order.status).toBe('confirmed');
    // Both sends reached payment-service (two inbox rows); the resend got the same authorization.
    expect(await apps.paymentCommandsReceived()).toBeGreaterThanOrEqual(received + 2);
    const auths = await apps.authorizations(orderId);
    expect(auths).toHaveLength(1);
    expect(auths[0]).toMatchObject({ status: 'authorized' });
    expect(stepOf(view, 'authorize-payment').result).toEqual({
      authorization: auths[0]!.authorization_id,
    });
    expect(await stock()).toBe(98);
  }, 60_000);
});
