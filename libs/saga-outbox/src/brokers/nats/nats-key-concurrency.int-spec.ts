import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { AckPolicy, DeliverPolicy, jetstreamManager } from '@nats-io/jetstream';
import { InvalidOptionsError } from '../../core/errors';
import type { BrokerMessage, DeliveredMessage } from '../../core/ports/broker';
import { waitUntil } from '../../testing/async';
import { connect } from './nats-client';
import { NatsJetStreamBroker, durableName, type NatsJetStreamBrokerOptions } from './nats-broker';

// Real nats-server with JetStream (bash scripts/services.sh start nats). One stream and subject
// prefix for this file, deleted at the end.
const SERVERS = process.env.SAGE_NATS_URL ?? 'nats://127.0.0.1:42229';
const RUN = randomUUID().slice(0, 8);
const STREAM = `SAGE_KEYS_${RUN}`;
const PREFIX = `sagekeys.${RUN}.`;
const WORKER = join(__dirname, '../../../../../test/support/nats-consumer-worker.ts');

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

afterAll(async () => {
  await Promise.allSettled(brokers.map((b) => b.close()));
  const nc = await connect({ servers: SERVERS });
  try {
    await (await jetstreamManager(nc)).streams.delete(STREAM).catch(() => false);
  } finally {
    await nc.close();
  }
});

const message = (destination: string, key: string, seq: number): BrokerMessage => ({
  id: randomUUID(),
  destination,
  key,
  type: 'nats.keyed',
  payload: { key, seq },
  headers: {},
  time: new Date(),
});

const seqOf = (m: DeliveredMessage): number => (m.payload as { seq: number }).seq;
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Publishes `perKey` messages for each key, one per key per batch (as the relay does). */
async function publishKeyed(
  broker: NatsJetStreamBroker,
  destination: string,
  keys: readonly string[],
  perKey: number,
): Promise<BrokerMessage[]> {
  const sent: BrokerMessage[] = [];
  for (let seq = 0; seq < perKey; seq++) {
    const batch = keys.map((key) => message(destination, key, seq));
    const results = await broker.publish(batch);
    expect(results.every((r) => r.ok)).toBe(true);
    sent.push(...batch);
  }
  return sent;
}

/** Counts handler calls running at once: the highest count is the concurrency actually used. */
function concurrencyGauge() {
  let now = 0;
  const gauge = {
    peak: 0,
    async around<T>(work: () => Promise<T>): Promise<T> {
      now++;
      gauge.peak = Math.max(gauge.peak, now);
      try {
        return await work();
      } finally {
        now--;
      }
    },
  };
  return gauge;
}

describe('NATS JetStream subscriber: keys handled concurrently, each in order', () => {
  it("holds only the failing key: A fails twice with back-off while all of B's messages are handled", async () => {
    const broker = newBroker({ redeliveryDelayMs: () => 500 });
    const dest = `hold.${randomUUID()}`;
    const events: string[] = [];
    let aFailures = 0;
    const attemptsOfA0: number[] = [];
    const sub = await broker.subscribe(dest, async (m) => {
      const label = `${m.key}${seqOf(m)}`;
      if (label === 'A0') {
        attemptsOfA0.push(m.deliveryAttempt);
        if (aFailures < 2) {
          aFailures++;
          events.push('A0 failed');
          throw new Error('A0 fails twice');
        }
      }
      await delay(2);
      events.push(label);
    });
    try {
      // A0 first, then B's messages and A's later ones interleaved, one publish at a time.
      await publishKeyed(broker, dest, ['A'], 1);
      for (let seq = 0; seq < 20; seq++) await broker.publish([message(dest, 'B', seq)]);
      await broker.publish([message(dest, 'A', 1), message(dest, 'A', 2)]);
      await waitUntil(() => events.includes('A2'), 'A2 handled', 15_000);

      // B was never held by A's back-off: all 20 handled before A0's retry succeeded.
      const bDone = events.filter((e) => e.startsWith('B'));
      expect(bDone).toHaveLength(20);
      const a0Done = events.indexOf('A0');
      expect(events.lastIndexOf('B19')).toBeLessThan(a0Done);
      // A stayed in order across its failures: A0 (third attempt), then A1, A2.
      expect(events.filter((e) => e.startsWith('A'))).toEqual([
        'A0 failed',
        'A0 failed',
        'A0',
        'A1',
        'A2',
      ]);
      expect(attemptsOfA0).toEqual([1, 2, 3]);
    } finally {
      await sub.unsubscribe();
    }
  });

  it('keeps per-key order with many keys and random handler delays, using the concurrency', async () => {
    const broker = newBroker({ concurrency: 8 });
    const dest = `order.${randomUUID()}`;
    const keys = Array.from({ length: 24 }, (_, i) => `key-${i}`);
    const perKey = 12;
    const handled = new Map<string, number[]>(keys.map((k) => [k, []]));
    const gauge = concurrencyGauge();
    let total = 0;
    const sub = await broker.subscribe(dest, (m) =>
      gauge.around(async () => {
        await delay(Math.floor(Math.random() * 6));
        handled.get(m.key ?? '')!.push(seqOf(m));
        total++;
      }),
    );
    try {
      await publishKeyed(broker, dest, keys, perKey);
      await waitUntil(() => total >= keys.length * perKey, 'every message handled', 20_000);
      const expected = Array.from({ length: perKey }, (_, i) => i);
      for (const key of keys)
        expect({ key, seqs: handled.get(key) }).toEqual({ key, seqs: expected });
      expect(gauge.peak).toBeGreaterThan(1); // different keys really ran at once
      expect(gauge.peak).toBeLessThanOrEqual(8);
    } finally {
      await sub.unsubscribe();
    }
  });

  it('never runs more handlers at once than nats.concurrency, and uses all of it', async () => {
    const broker = newBroker({ concurrency: 3, prefetch: 8 });
    const dest = `limit.${randomUUID()}`;
    const keys = Array.from({ length: 30 }, (_, i) => `k${i}`);
    const gauge = concurrencyGauge();
    let total = 0;
    const sub = await broker.subscribe(dest, () =>
      gauge.around(async () => {
        await delay(15);
        total++;
      }),
    );
    try {
      await publishKeyed(broker, dest, keys, 2);
      await waitUntil(() => total >= 60, 'every message handled', 20_000);
      expect(gauge.peak).toBe(3);
    } finally {
      await sub.unsubscribe();
    }
  });

  it('drains on unsubscribe: a running handler finishes and is acked, nothing is redelivered', async () => {
    const broker = newBroker({ concurrency: 4 });
    const dest = `drain.${randomUUID()}`;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const first: string[] = [];
    let entered = 0;
    const sub = await broker.subscribe(dest, async (m) => {
      entered++;
      await gate;
      first.push(m.id);
    });
    const sent = await publishKeyed(broker, dest, ['x', 'y', 'z'], 1);
    await waitUntil(() => entered === 3, 'three handlers running at once', 10_000);
    const stopping = sub.unsubscribe();
    release();
    await stopping;
    expect(first.sort()).toEqual(sent.map((m) => m.id).sort());
    // Acked: a new member of the group gets nothing (the sentinel proves it is consuming).
    const again: string[] = [];
    const second = await broker.subscribe(dest, (m) => Promise.resolve(void again.push(m.id)));
    try {
      const sentinel = message(dest, 'x', 9);
      await broker.publish([sentinel]);
      await waitUntil(() => again.includes(sentinel.id), 'the sentinel', 10_000);
      expect(again).toEqual([sentinel.id]);
    } finally {
      await second.unsubscribe();
    }
  });

  it("refuses a concurrency above the consumer's max_ack_pending, naming the option", async () => {
    for (const concurrency of [0, 1.5, -1])
      expect(() => newBroker({ concurrency })).toThrow(
        new InvalidOptionsError('nats.concurrency', `must be an integer >= 1, got ${concurrency}`),
      );
    const dest = `ackpending.${randomUUID()}`;
    const setup = newBroker();
    // Provisions the stream, then an operator-made consumer with a small max_ack_pending.
    await setup.publish([message(dest, 'k', 0)]);
    const nc = await connect({ servers: SERVERS });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.consumers.add(STREAM, {
        durable_name: durableName(dest, dest),
        filter_subject: PREFIX + dest,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        max_ack_pending: 4,
      });
    } finally {
      await nc.close();
    }
    const error = await newBroker({ concurrency: 8 })
      .subscribe(dest, () => Promise.resolve())
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect((error as InvalidOptionsError).option).toBe('nats.concurrency');
    expect((error as Error).message).toMatch(/max_ack_pending \(4\)/);
    const ok = await newBroker({ concurrency: 4 }).subscribe(dest, () => Promise.resolve());
    await ok.unsubscribe();
  });

  it('kill -9 with keys in flight and one held in back-off: every message not acked comes back', async () => {
    const dest = `kill.${randomUUID()}`;
    const group = `kill-${RUN}`;
    const broker = newBroker({ ackWaitMs: 2_000 });
    const keys = ['held', 'k1', 'k2', 'k3', 'k4', 'k5'];
    // Provision the consumer before publishing, so the worker starts at the first message.
    await (
      await broker.subscribe(dest, () => Promise.reject(new Error('unused')), { group })
    )
      .unsubscribe()
      .catch(() => undefined);
    const sent = await publishKeyed(broker, dest, keys, 15);

    const child: ChildProcessWithoutNullStreams = spawn(
      process.execPath,
      ['-r', 'ts-node/register/transpile-only', WORKER],
      {
        env: {
          ...process.env,
          TS_NODE_TRANSPILE_ONLY: 'true',
          SAGE_NATS_URL: SERVERS,
          STREAM,
          PREFIX,
          DESTINATION: dest,
          GROUP: group,
          CONCURRENCY: '4',
          ACK_WAIT_MS: '2000',
          FAILING_KEY: 'held',
        },
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    const handledByWorker = new Set<string>();
    let failedInWorker = 0;
    let stderr = '';
    let buffer = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        const event = JSON.parse(line) as { handled?: string; failed?: string };
        if (event.handled) handledByWorker.add(event.handled);
        if (event.failed) failedInWorker++;
      }
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await waitUntil(
        () => handledByWorker.size >= 20 && failedInWorker >= 1,
        `the worker handled 20 messages and failed the held key (stderr: ${stderr})`,
        30_000,
      );
    } finally {
      child.kill('SIGKILL');
    }
    expect(await exited).toBeNull(); // killed by the signal
    expect(stderr).toBe('');
    expect(handledByWorker.size).toBeLessThan(sent.length - 15); // it was killed mid-stream

    // The survivor of the group: everything the worker did not finish reaches it, the held key's
    // messages included (after ack_wait, as nothing acked or nak'ed them).
    const survivor = new Map<string, DeliveredMessage>();
    const sub = await broker.subscribe(dest, (m) => Promise.resolve(void survivor.set(m.id, m)), {
      group,
    });
    try {
      const missing = () => sent.filter((m) => !handledByWorker.has(m.id) && !survivor.has(m.id));
      await waitUntil(
        () => missing().length === 0,
        'every message the worker did not handle',
        20_000,
      );
      const held = sent.filter((m) => m.key === 'held');
      for (const m of held) expect(survivor.has(m.id)).toBe(true);
      // Only messages whose ack had not left the killed process may come twice (at-least-once):
      // the handlers finishing in its last moments, a few at most.
      const twice = [...survivor.keys()].filter((id) => handledByWorker.has(id));
      expect(twice.length).toBeLessThanOrEqual(8);
    } finally {
      await sub.unsubscribe();
    }
  });
});
