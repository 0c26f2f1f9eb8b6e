import { createConnection } from 'node:net';
import { exec } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from '@jest/globals';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { BrokerUnavailableError } from '../../core/outbox/outbox-errors';
import type { BrokerMessage, DeliveredMessage, PublishResult } from '../../core/ports/broker';
import {
  describeBrokerConformance,
  expectKeyOrderUnderFailure,
  type RawTestMessage,
} from '../../testing/broker-conformance';
import { connect, headers } from './nats-client';
import { NatsJetStreamBroker, type NatsJetStreamBrokerOptions } from './nats-broker';

// Real nats-server with JetStream (bash scripts/services.sh start nats). One stream and subject
// prefix per test file, deleted at the end, so files and runs never see each other's messages.
const SERVERS = process.env.SAGE_NATS_URL ?? 'nats://127.0.0.1:42229';
const RUN = randomUUID().slice(0, 8);
const STREAM = `SAGE_TEST_${RUN}`;
const PREFIX = `sagetest.${RUN}.`;
const REPO_ROOT = join(__dirname, '../../../../..');

const brokers: NatsJetStreamBroker[] = [];
function newBroker(options: Partial<NatsJetStreamBrokerOptions> = {}): NatsJetStreamBroker {
  const broker = new NatsJetStreamBroker({
    servers: SERVERS,
    stream: STREAM,
    subjectPrefix: PREFIX,
    ackWaitMs: 5_000,
    ...options,
  });
  brokers.push(broker);
  return broker;
}

async function deleteStream(): Promise<void> {
  const nc = await connect({ servers: SERVERS });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(STREAM).catch(() => false);
  } finally {
    await nc.close();
  }
}

afterAll(async () => {
  await Promise.allSettled(brokers.map((b) => b.close()));
  await deleteStream();
});

/**
 * Publishes with the bare NATS protocol (HPUB over TCP), as a producer in any language could: the
 * nats.js client refuses some header names that other clients send. One connection, so JetStream
 * stores the messages in the order sent. Header values cannot hold CR/LF (they would end the line).
 */
async function publishRaw(subject: string, messages: readonly RawTestMessage[]): Promise<void> {
  const { hostname, port } = new URL(SERVERS.split(',')[0]!);
  const socket = createConnection({ host: hostname, port: Number(port) });
  let received = '';
  const seen = (text: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (received.includes('-ERR')) reject(new Error(`NATS: ${received}`));
        else if (received.includes(text)) resolve();
        else setTimeout(check, 5);
      };
      check();
    });
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  try {
    await seen('INFO');
    socket.write('CONNECT {"verbose":false,"pedantic":false,"headers":true,"protocol":1}\r\n');
    for (const m of messages) {
      const lines = Object.entries({ ...m.headers, 'ce-subject': m.key })
        .map(([name, value]) => `${name}: ${value}\r\n`)
        .join('');
      const head = Buffer.from(`NATS/1.0\r\n${lines}\r\n`);
      socket.write(`HPUB ${subject} ${head.length} ${head.length + m.body.length}\r\n`);
      socket.write(Buffer.concat([head, m.body, Buffer.from('\r\n')]));
    }
    socket.write('PING\r\n');
    await seen('PONG');
  } finally {
    socket.destroy();
  }
}

describeBrokerConformance('nats', () =>
  Promise.resolve({
    broker: newBroker({ maxMessageBytes: 256 * 1024 }),
    // The suite subscribes before it sends raw messages: the subscription provisions the stream.
    destination: () => Promise.resolve(`conformance.${randomUUID()}`),
    cleanup: () => Promise.resolve(),
    deliveryTimeoutMs: 10_000,
    maxMessageBytes: 256 * 1024,
    headerLineBreaks: false,
    headerNameWithSpaces: 'bad-headers',
    sendRaw: (destination: string, messages: readonly RawTestMessage[]) =>
      publishRaw(PREFIX + destination, messages),
  }),
);

const message = (destination: string, overrides: Partial<BrokerMessage> = {}): BrokerMessage => ({
  id: randomUUID(),
  destination,
  key: null,
  type: 'nats.tested',
  payload: { at: Date.now() },
  headers: {},
  time: new Date(),
  ...overrides,
});

/** Records deliveries; `waitFor` polls a condition (never a fixed sleep) up to a deadline. */
function recorder() {
  const got: DeliveredMessage[] = [];
  return {
    got,
    handler: (m: DeliveredMessage): Promise<void> => {
      got.push(m);
      return Promise.resolve();
    },
    waitFor: async (
      condition: () => boolean,
      what: string,
      timeoutMs = 15_000,
      explain: () => string = () => '',
    ): Promise<void> => {
      const deadline = Date.now() + timeoutMs;
      while (!condition()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}. ${explain()}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
}

describe('NatsJetStreamBroker against a real JetStream', () => {
  it('publishes a poison message to the .dlq subject as it came, with the reason, and terminates it', async () => {
    const broker = newBroker();
    const dest = `poison.${randomUUID()}`;
    const r = recorder();
    const sub = await broker.subscribe(dest, r.handler);
    const nc = await connect({ servers: SERVERS });
    try {
      const js = jetstream(nc);
      const bad = headers();
      bad.set('ce-id', 'bad-1');
      await js.publish(PREFIX + dest, new TextEncoder().encode('not json'), { headers: bad });
      const good = headers();
      good.set('ce-id', 'good-2');
      await js.publish(PREFIX + dest, new TextEncoder().encode('{"n":2}'), { headers: good });
      await r.waitFor(
        () => r.got.some((m) => m.id === 'good-2'),
        'the message after the poison one',
      );
      expect(r.got.map((m) => m.id)).toEqual(['good-2']);
      const jsm = await jetstreamManager(nc);
      const letter = await jsm.streams.getMessage(STREAM, { last_by_subj: `${PREFIX}${dest}.dlq` });
      expect(new TextDecoder().decode(letter!.data)).toBe('not json');
      expect(letter!.header.get('sage-dead-letter-reason')).toBe('not-json');
      expect(letter!.header.get('sage-dead-letter-id')).toBe('bad-1');
      expect(letter!.header.get('ce-id')).toBe('bad-1');
      expect(letter!.header.get('sage-dead-letter-position')).toMatch(
        new RegExp(`^${STREAM}:\\d+$`),
      );
    } finally {
      await nc.close();
      await sub.unsubscribe();
    }
  });

  it('publishes a message id twice but delivers it once (Nats-Msg-Id dedup)', async () => {
    const broker = newBroker();
    const dest = `dedup.${randomUUID()}`;
    const twice = message(dest);
    expect(await broker.publish([twice])).toEqual([{ id: twice.id, ok: true }]);
    // The relay republishing after a lost ack: a new batch, same id, reported ok.
    expect(await broker.publish([{ ...twice, payload: { again: true } }])).toEqual([
      { id: twice.id, ok: true },
    ]);
    expect(broker.stats().duplicates).toBe(1);
    const sentinel = message(dest);
    await broker.publish([sentinel]);

    const r = recorder();
    const sub = await broker.subscribe(dest, r.handler);
    try {
      await r.waitFor(() => r.got.some((m) => m.id === sentinel.id), 'the sentinel');
      expect(r.got.map((m) => m.id)).toEqual([twice.id, sentinel.id]);
      expect(r.got[0]?.payload).toEqual(twice.payload); // the first copy won
    } finally {
      await sub.unsubscribe();
    }
  });

  it('loses no acknowledged message across a server restart mid-stream', async () => {
    const events: string[] = []; // the adapter's own log, shown if the test fails
    const t0 = Date.now();
    const note = (text: string, fields?: Record<string, unknown>): void => {
      events.push(`+${Date.now() - t0}ms ${text} ${fields ? JSON.stringify(fields) : ''}`);
    };
    const logger = { debug: note, info: note, warn: note, error: note };
    const broker = newBroker({ publishTimeoutMs: 2_000, logger });
    const dest = `restart.${randomUUID()}`;
    const r = recorder();
    const sub = await broker.subscribe(dest, r.handler);
    const ok = new Set<string>();
    const sent: string[] = [];
    const failures: string[] = [];
    try {
      // A relay-like publisher: batches of 10, new messages until the restart is over and at least
      // 400 were sent; whatever fails is published again (same id), after a short backoff.
      let pending: BrokerMessage[] = [];
      let restart: Promise<unknown> | undefined;
      let restarted = false;
      const deadline = Date.now() + 30_000;
      while ((pending.length || !restarted || sent.length < 400) && Date.now() < deadline) {
        while (pending.length < 10 && (!restarted || sent.length < 400)) {
          const m = message(dest);
          sent.push(m.id);
          pending.push(m);
        }
        const batch = pending.slice(0, 10);
        let results: PublishResult[];
        try {
          results = await broker.publish(batch);
        } catch (error) {
          failures.push(String(error));
          results = batch.map((m) => ({ id: m.id, ok: false, error: 'rejected', retryable: true }));
        }
        for (const result of results) {
          if (result.ok) ok.add(result.id);
          else failures.push(result.error);
        }
        pending = [...pending.slice(10), ...batch.filter((m) => !ok.has(m.id))];
        if (results.some((x) => !x.ok)) await new Promise((resolve) => setTimeout(resolve, 50));
        if (ok.size >= 100 && !restart) {
          note('restarting nats-server');
          restart = promisify(exec)('bash scripts/services.sh restart nats', {
            cwd: REPO_ROOT,
          }).then(() => {
            restarted = true;
            note('nats-server restarted');
          });
        }
      }
      note(`publishing done: ${ok.size} ok, ${failures.length} failures`);
      await restart;
      expect(pending).toHaveLength(0);
      expect(ok.size).toBe(sent.length);
      expect(failures.length).toBeGreaterThan(0); // the restart really hit the stream

      const delivered = (): Set<string> => new Set(r.got.map((m) => m.id));
      await r.waitFor(
        () => [...ok].every((id) => delivered().has(id)),
        'every acknowledged message to be delivered',
        30_000,
        () =>
          `${[...ok].filter((id) => !delivered().has(id)).length} of ${ok.size} missing; ` +
          `adapter log:\n${events.slice(-30).join('\n')}`,
      );
      // Republished copies were suppressed, even across the restart: one stored copy per id.
      const nc = await connect({ servers: SERVERS });
      try {
        const jsm = await jetstreamManager(nc);
        const info = await jsm.streams.info(STREAM, { subjects_filter: PREFIX + dest });
        expect(info.state.subjects?.[PREFIX + dest]).toBe(sent.length);
      } finally {
        await nc.close();
      }
    } finally {
      await sub.unsubscribe();
    }
  });

  it('keeps per-key order at a single consumer with many publishes in flight', async () => {
    const broker = newBroker();
    const dest = `order.${randomUUID()}`;
    const keys = ['a', 'b', 'c', 'd', 'e'];
    const r = recorder();
    const sub = await broker.subscribe(dest, r.handler);
    try {
      // Like the relay: one message per key per batch, batches one after another.
      for (let i = 0; i < 30; i++) {
        const results = await broker.publish(
          keys.map((key) => message(dest, { key, payload: { key, i } })),
        );
        expect(results.every((x) => x.ok)).toBe(true);
      }
      await r.waitFor(() => r.got.length >= 150, '150 deliveries');
      for (const key of keys) {
        const seen = r.got.filter((m) => m.key === key).map((m) => (m.payload as { i: number }).i);
        expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => i));
      }
    } finally {
      await sub.unsubscribe();
    }
  });

  it('keeps per-key order when a handler fails: the failed message is handled before the next of its key', async () => {
    await expectKeyOrderUnderFailure(newBroker(), `order-failure.${randomUUID()}`);
  });

  it('hands a message waiting for its in-process retry back to JetStream on unsubscribe', async () => {
    const broker = newBroker({ redeliveryDelayMs: () => 60_000 });
    const dest = `retry-stop.${randomUUID()}`;
    const failing = recorder();
    const first = await broker.subscribe(dest, (m) => {
      failing.got.push(m);
      return Promise.reject(new Error('fails; the retry waits a minute'));
    });
    const sent = message(dest);
    expect((await broker.publish([sent])).every((r) => r.ok)).toBe(true);
    await failing.waitFor(() => failing.got.length === 1, 'the first failure');
    const stopping = Date.now();
    await first.unsubscribe();
    expect(Date.now() - stopping).toBeLessThan(5_000); // did not wait out the minute
    const r = recorder();
    const second = await broker.subscribe(dest, r.handler);
    try {
      await r.waitFor(() => r.got.length === 1, 'the redelivery');
    } finally {
      await second.unsubscribe();
    }
    // Not asserted: deliveryAttempt. JetStream reports delivery count 1 again after the nak on stop.
    expect(r.got.map((m) => m.id)).toEqual([sent.id]);
    expect(failing.got).toHaveLength(1);
  });

  it('never has more than maxPending publishes awaiting an ack', async () => {
    const broker = newBroker({ maxPending: 4 });
    const dest = `pending.${randomUUID()}`;
    const batches = [60, 40, 20].map((n) => Array.from({ length: n }, () => message(dest)));
    const results = await Promise.all(batches.map((b) => broker.publish(b)));
    results.forEach((res, i) => {
      expect(res.map((x) => x.id)).toEqual(batches[i]!.map((m) => m.id));
      expect(res.every((x) => x.ok)).toBe(true);
    });
    expect(broker.stats().peakPendingAcks).toBe(4); // bounded, and the bound was actually used
    expect(broker.stats().pendingAcks).toBe(0);
  });

  it('fails messages NATS can never take, without failing the rest of the batch', async () => {
    const broker = newBroker();
    const dest = `invalid.${randomUUID()}`;
    const good = message(dest);
    const badSubject = message('has space.x');
    const badWildcard = message(`${dest}.*`);
    const reserved = message(dest, { headers: { 'Nats-Rollup': 'sub' } });
    const results = await broker.publish([good, badSubject, badWildcard, reserved]);
    expect(results.map((x) => x.id)).toEqual([good.id, badSubject.id, badWildcard.id, reserved.id]);
    expect(results[0]).toEqual({ id: good.id, ok: true });
    for (const failed of results.slice(1))
      expect(failed).toMatchObject({ ok: false, retryable: false });
  });

  it('reports publishes cut short by the signal as failed, retryable, in batch order', async () => {
    const broker = newBroker({ maxPending: 2 });
    const dest = `abort.${randomUUID()}`;
    const batch = Array.from({ length: 100 }, () => message(dest));
    await broker.publish([message(dest)]); // connected and provisioned, so the abort lands mid-batch
    const controller = new AbortController();
    const publishing = broker.publish(batch, controller.signal);
    while (broker.stats().pendingAcks < 2) await new Promise((resolve) => setImmediate(resolve));
    controller.abort(); // mid-batch: two acks awaited, the rest queued behind maxPending
    const results = await publishing;
    expect(results.map((x) => x.id)).toEqual(batch.map((m) => m.id));
    const failed = results.filter((x) => !x.ok);
    expect(failed.length).toBeGreaterThan(0);
    for (const f of failed)
      expect(f).toMatchObject({ retryable: true, error: expect.stringMatching(/abort/) });
  });

  it('keeps one group on two destinations apart (one durable consumer per group and destination)', async () => {
    const broker = newBroker();
    const [d1, d2] = [`groups.${randomUUID()}`, `groups.${randomUUID()}`];
    const r1 = recorder();
    const r2 = recorder();
    const subs = [
      await broker.subscribe(d1, r1.handler, { group: 'billing' }),
      await broker.subscribe(d2, r2.handler, { group: 'billing' }),
    ];
    try {
      const [m1, m2] = [message(d1), message(d2)];
      await broker.publish([m1, m2]);
      await r1.waitFor(() => r1.got.length >= 1 && r2.got.length >= 1, 'both deliveries');
      expect(r1.got.map((m) => m.id)).toEqual([m1.id]);
      expect(r2.got.map((m) => m.id)).toEqual([m2.id]);
    } finally {
      for (const s of subs) await s.unsubscribe();
    }
  });

  it('reports down and rejects publishes when no server answers', async () => {
    const broker = newBroker({ servers: 'nats://127.0.0.1:1', healthTimeoutMs: 1_000 });
    await expect(broker.health()).resolves.toMatchObject({ up: false });
    // The outage, not the message's fault: BrokerUnavailableError, which the relay does not count.
    await expect(broker.publish([message('x')])).rejects.toBeInstanceOf(BrokerUnavailableError);
  });
});
