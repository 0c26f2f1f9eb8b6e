/**
 * A delivery lost in transit (JetStream sent it, the connection died before the client read it)
 * comes back only after ack_wait; meanwhile the later messages of its key must not be handled
 * first. The subscriber reaches NATS through a proxy of this test that can swallow what the server
 * sends and then cut the connection: the loss, made on purpose.
 */
import { randomUUID } from 'node:crypto';
import { connect as tcpConnect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, expect, it } from '@jest/globals';
import { jetstreamManager } from '@nats-io/jetstream';
import type { BrokerMessage, DeliveredMessage, SubscribeOptions } from '../../core/ports/broker';
import { waitUntil } from '../../testing/async';
import { connect } from './nats-client';
import { NatsJetStreamBroker, durableName } from './nats-broker';

// Real nats-server with JetStream (bash scripts/services.sh start nats).
const SERVERS = process.env.SAGE_NATS_URL ?? 'nats://127.0.0.1:42229';
const RUN = randomUUID().slice(0, 8);
const STREAM = `SAGE_LOST_${RUN}`;
const PREFIX = `sagelost.${RUN}.`;
/** Far longer than the test waits: the lost delivery does not come back on its own meanwhile. */
const ACK_WAIT_MS = 60_000;

/** Forwards to NATS; `swallow()` drops what the server sends, `cut()` ends the connections. */
class LossyProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private swallowing = false;
  port = 0;

  async start(target: URL): Promise<void> {
    const server = createServer((client) => {
      const upstream = tcpConnect(Number(target.port), target.hostname);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.on('data', (chunk: Buffer) => {
        if (!this.swallowing) client.write(chunk);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    this.server = server;
    this.port = (server.address() as { port: number }).port;
  }

  swallow(): void {
    this.swallowing = true;
  }

  /** Ends every connection (what was swallowed is lost); new ones are forwarded normally. */
  cut(): void {
    for (const socket of this.sockets) socket.destroy();
    this.swallowing = false;
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}

const proxy = new LossyProxy();
const brokers: NatsJetStreamBroker[] = [];
afterAll(async () => {
  await Promise.allSettled(brokers.map((b) => b.close()));
  await proxy.stop();
  const nc = await connect({ servers: SERVERS });
  try {
    await (await jetstreamManager(nc)).streams.delete(STREAM).catch(() => false);
  } finally {
    await nc.close();
  }
});

function newBroker(servers = SERVERS): NatsJetStreamBroker {
  const broker = new NatsJetStreamBroker({
    servers,
    stream: STREAM,
    subjectPrefix: PREFIX,
    ackWaitMs: ACK_WAIT_MS,
  });
  brokers.push(broker);
  return broker;
}

const message = (destination: string, key: string, seq: number): BrokerMessage => ({
  id: randomUUID(),
  destination,
  key,
  type: 'nats.lost',
  payload: { key, seq },
  headers: {},
  time: new Date(),
});

it.each([
  ['one message at a time', false],
  ['in batches (SubscribeOptions.batch)', true],
])(
  '%s: a delivery lost in transit is handled before the later messages of its key, not after ack_wait',
  async (_, batched) => {
    const destination = `lost-${batched ? 'batched' : 'single'}-${RUN}`;
    const publisher = newBroker();
    if (!proxy.port) await proxy.start(new URL(SERVERS.replace(/^nats:/, 'http:')));
    const subscriber = newBroker(`nats://127.0.0.1:${proxy.port}`);
    const handled: string[] = [];
    const record = (m: DeliveredMessage) => {
      const p = m.payload as { key: string; seq: number };
      handled.push(`${p.key}/${p.seq}`);
    };
    const batches: string[][] = [];
    const options: SubscribeOptions = batched
      ? {
          batch: {
            maxSize: 16,
            handle: (messages) => {
              messages.forEach(record);
              batches.push(messages.map((m) => String(m.key)));
              return Promise.resolve(true);
            },
          },
        }
      : {};
    await subscriber.subscribe(destination, (m) => Promise.resolve(record(m)), options);
    const publish = async (key: string, seq: number): Promise<void> =>
      expect((await publisher.publish([message(destination, key, seq)]))[0]!.ok).toBe(true);
    await publish('k', 1);
    await waitUntil(() => handled.includes('k/1'), 'k/1 handled');

    // k/2 is sent by JetStream (counted delivered) and swallowed on its way, then the connection dies.
    const nc = await connect({ servers: SERVERS });
    try {
      const jsm = await jetstreamManager(nc);
      const durable = durableName(destination, destination);
      proxy.swallow();
      await publish('k', 2);
      await waitUntil(
        async () => (await jsm.consumers.info(STREAM, durable)).delivered.consumer_seq >= 2,
        'JetStream sent k/2',
      );
    } finally {
      await nc.close();
    }
    proxy.cut();

    // After the reconnection k/3 is delivered first; k/2 would come back after ack_wait only.
    // Other keys come with it: in batches they go to the batch handler while k/3 waits for k/2.
    const others = ['a', 'b', 'c'].map((key) => message(destination, key, 1));
    const results = await publisher.publish([message(destination, 'k', 3), ...others]);
    expect(results.every((r) => r.ok)).toBe(true);
    await waitUntil(
      () => ['k/2', 'k/3', 'a/1', 'b/1', 'c/1'].every((label) => handled.includes(label)),
      'k/2 and k/3 handled (well before ack_wait)',
      15_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}; handled: ${handled.join(', ')}`);
    });
    expect(handled.indexOf('k/2')).toBeLessThan(handled.indexOf('k/3'));
    if (batched) expect(batches.flat()).toEqual(expect.arrayContaining(['a', 'b', 'c']));
    await subscriber.close();
  },
);
