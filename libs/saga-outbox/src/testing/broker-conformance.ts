import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { messageIdProblem } from '../core/message-id';
import type {
  Broker,
  BrokerMessage,
  DeadLetteredMessage,
  DeadLetterReason,
  DeliveredMessage,
} from '../core/ports/broker';
import { signMessage, verifyMessageSignature } from '../core/signing/message-signature';
import { signingKeys } from '../core/signing/signing-keys';
import { waitUntil } from './async';

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

/** What a broker adapter hands the conformance suite. */
export interface BrokerConformanceHarness {
  broker: Broker;
  /** A destination no other test uses (unique topic / queue / subject), created if the broker needs that. */
  destination(): Promise<string>;
  /** Releases what the factory opened (the suite closes the broker itself). */
  cleanup(): Promise<void>;
  /** How long to wait for a delivery before failing. Default 10000. */
  deliveryTimeoutMs?: number;
  /**
   * Sends messages as another producer would, with the broker's own client, in order (one
   * connection, one partition for one key): what the poison cases put on the wire. Without it the
   * poison cases are not run.
   */
  sendRaw?: (destination: string, messages: readonly RawTestMessage[]) => Promise<void>;
  /** The adapter's `maxMessageBytes` (the oversize case sends one byte more). Default 1 MiB. */
  maxMessageBytes?: number;
  /** Whether a header value may hold CR/LF on this transport (NATS cannot frame one). Default true. */
  headerLineBreaks?: boolean;
  /**
   * What becomes of a message with a header name holding spaces: handed over (Kafka, AMQP carry
   * any name) or dead-lettered as `bad-headers` (the NATS client cannot decode it). Default handed over.
   */
  headerNameWithSpaces?: 'handled' | 'bad-headers';
}

/** A message as it travels, sent by another producer (see `sendRaw`). */
export interface RawTestMessage {
  /** Headers as sent; `ce-id` (when present) is the message id. */
  headers: Record<string, string>;
  body: Buffer;
  /** Record key / `ce-subject`: the poison cases send one key, so one partition holds them all. */
  key: string;
}

/**
 * The tests every Broker adapter must pass, through the port only: one result per
 * message in batch order, acknowledged messages delivered intact with the outbox id as message id,
 * consumer groups share work, a failing handler gets the message again, health, close.
 */
export function describeBrokerConformance(
  label: string,
  factory: () => Promise<BrokerConformanceHarness>,
): void {
  describe(`Broker conformance: ${label}`, () => {
    let harness: BrokerConformanceHarness | undefined;
    const h = (): BrokerConformanceHarness => {
      if (!harness) throw new Error('conformance harness not initialised (did the factory fail?)');
      return harness;
    };

    beforeAll(async () => {
      harness = await factory();
    });
    afterAll(async () => {
      await harness?.broker.close();
      await harness?.cleanup();
    });

    const message = (
      destination: string,
      overrides: Partial<BrokerMessage> = {},
    ): BrokerMessage => ({
      id: randomUUID(),
      destination,
      key: `k-${randomUUID().slice(0, 8)}`,
      type: 'conformance.tested',
      payload: { n: 1, nested: { list: [1, 'two', null, true] }, text: 'zażółć "quoted" \\ back' },
      headers: {
        traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
        'x-extra': 'yes',
      },
      time: new Date('2025-01-02T03:04:05.678Z'),
      ...overrides,
    });

    /** Collects deliveries; `until(n)` waits (on a condition, not a sleep) for n of them. */
    const collector = () => {
      const got: DeliveredMessage[] = [];
      let wake: (() => void) | undefined;
      return {
        got,
        handler: (m: DeliveredMessage): Promise<void> => {
          got.push(m);
          wake?.();
          return Promise.resolve();
        },
        until: async (
          n: number,
          pred: (m: DeliveredMessage) => boolean = () => true,
        ): Promise<DeliveredMessage[]> => {
          const deadline = Date.now() + (h().deliveryTimeoutMs ?? 10_000);
          while (got.filter(pred).length < n) {
            if (Date.now() > deadline)
              throw new Error(`expected ${n} deliveries, got ${got.filter(pred).length}`);
            await new Promise<void>((resolve) => {
              wake = resolve;
              setTimeout(resolve, 50);
            });
          }
          return got.filter(pred);
        },
      };
    };

    it('returns one ok result per message, in batch order, with the same ids', async () => {
      const dest = await h().destination();
      const batch = Array.from({ length: 25 }, () => message(dest));
      const results = await h().broker.publish(batch);
      expect(results.map((r) => r.id)).toEqual(batch.map((m) => m.id));
      expect(results.every((r) => r.ok)).toBe(true);
    });

    it('accepts an empty batch', async () => {
      await expect(h().broker.publish([])).resolves.toEqual([]);
    });

    it('delivers acknowledged messages intact, with the outbox id as the message id', async () => {
      const dest = await h().destination();
      const c = collector();
      const sub = await h().broker.subscribe(dest, c.handler);
      try {
        const sent = message(dest);
        await h().broker.publish([sent]);
        const [got] = await c.until(1);
        expect(got).toMatchObject({
          id: sent.id,
          destination: dest,
          key: sent.key,
          type: sent.type,
          payload: sent.payload,
        });
        expect(got?.headers).toMatchObject(sent.headers);
        expect(got?.deliveryAttempt).toBe(1);
      } finally {
        await sub.unsubscribe();
      }
    });

    it('a signed message still verifies once delivered (message signing survives the transport)', async () => {
      const dest = await h().destination();
      const c = collector();
      const sub = await h().broker.subscribe(dest, c.handler);
      try {
        const keys = signingKeys({
          active: 'conformance',
          keys: { conformance: Buffer.alloc(32, 5) },
        });
        const sage = { 'sage-saga-id': randomUUID(), 'sage-attempt': '1', 'Sage-Step': 'pay' };
        const sent = [
          message(dest, { headers: { ...message(dest).headers, ...sage } }),
          message(dest, { key: null, payload: null, headers: sage }),
        ].map((m) => signMessage(m, keys));
        await h().broker.publish(sent);
        const got = await c.until(2);
        for (const m of got) expect(() => verifyMessageSignature(m, keys)).not.toThrow();
      } finally {
        await sub.unsubscribe();
      }
    });

    it('keeps per-key order across batches', async () => {
      const dest = await h().destination();
      const c = collector();
      const sub = await h().broker.subscribe(dest, c.handler);
      try {
        const key = `order-${randomUUID()}`;
        const sent = Array.from({ length: 20 }, (_, i) => message(dest, { key, payload: { i } }));
        for (const m of sent) await h().broker.publish([m]);
        const got = await c.until(20);
        expect(got.map((m) => m.id)).toEqual(sent.map((m) => m.id));
      } finally {
        await sub.unsubscribe();
      }
    });

    it('gives each consumer group every message, and shares them within a group', async () => {
      const dest = await h().destination();
      const a1 = collector();
      const a2 = collector();
      const b = collector();
      const subs = [
        await h().broker.subscribe(dest, a1.handler, { group: 'group-a' }),
        await h().broker.subscribe(dest, a2.handler, { group: 'group-a' }),
        await h().broker.subscribe(dest, b.handler, { group: 'group-b' }),
      ];
      try {
        const sent = Array.from({ length: 10 }, () => message(dest));
        await h().broker.publish(sent);
        await b.until(10);
        const deadline = Date.now() + (h().deliveryTimeoutMs ?? 10_000);
        while (
          new Set([...a1.got, ...a2.got].map((m) => m.id)).size < 10 &&
          Date.now() < deadline
        ) {
          await new Promise((r) => setTimeout(r, 20));
        }
        expect(new Set([...a1.got, ...a2.got].map((m) => m.id))).toEqual(
          new Set(sent.map((m) => m.id)),
        );
        expect(new Set(b.got.map((m) => m.id))).toEqual(new Set(sent.map((m) => m.id)));
      } finally {
        for (const s of subs) await s.unsubscribe();
      }
    });

    it('redelivers a message whose handler failed (at-least-once)', async () => {
      const dest = await h().destination();
      const attempts: number[] = [];
      let done: () => void = () => undefined;
      const delivered = new Promise<void>((resolve) => (done = resolve));
      const sub = await h().broker.subscribe(dest, (m) => {
        attempts.push(m.deliveryAttempt);
        if (attempts.length === 1) return Promise.reject(new Error('handler failed once'));
        done();
        return Promise.resolve();
      });
      try {
        await h().broker.publish([message(dest)]);
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            delivered,
            new Promise((_, reject) => {
              timer = setTimeout(
                () => reject(new Error('no redelivery')),
                h().deliveryTimeoutMs ?? 10_000,
              );
            }),
          ]);
        } finally {
          clearTimeout(timer);
        }
        expect(attempts.length).toBeGreaterThanOrEqual(2);
        expect(attempts[1]).toBeGreaterThan(attempts[0]!);
      } finally {
        await sub.unsubscribe();
      }
    });

    it('stops delivering after unsubscribe', async () => {
      const dest = await h().destination();
      const c = collector();
      const sub = await h().broker.subscribe(dest, c.handler);
      await sub.unsubscribe();
      const probe = collector();
      const probeSub = await h().broker.subscribe(dest, probe.handler, { group: 'probe' });
      try {
        await h().broker.publish([message(dest)]);
        await probe.until(1); // delivered elsewhere, so delivery had its chance
        expect(c.got).toHaveLength(0);
      } finally {
        await probeSub.unsubscribe();
      }
    });

    it('reports health up while connected', async () => {
      await expect(h().broker.health()).resolves.toMatchObject({ up: true });
    });

    describe('poison messages', () => {
      const poisonCases = (): {
        name: string;
        headers: Record<string, string>;
        body: Buffer;
        reason: DeadLetterReason;
      }[] => {
        const id = () => `poison-${randomUUID()}`;
        const max = h().maxMessageBytes ?? 1024 * 1024;
        return [
          { name: 'no id', headers: {}, body: json({ a: 1 }), reason: 'missing-id' },
          { name: 'a blank id', headers: { 'ce-id': '   ' }, body: json(1), reason: 'missing-id' },
          {
            name: 'an id with NUL',
            headers: { 'ce-id': 'a\u0000b' },
            body: json(1),
            reason: 'unusable-id',
          },
          {
            name: 'a 600-character id',
            headers: { 'ce-id': 'x'.repeat(600) },
            body: json(1),
            reason: 'unusable-id',
          },
          {
            name: 'a body that is not JSON',
            headers: { 'ce-id': id() },
            body: Buffer.from('hello, not json'),
            reason: 'not-json',
          },
          {
            name: 'an empty body',
            headers: { 'ce-id': id() },
            body: Buffer.alloc(0),
            reason: 'empty-body',
          },
          {
            name: 'an oversize body',
            headers: { 'ce-id': id() },
            body: Buffer.alloc(max + 1, 0x20),
            reason: 'too-large',
          },
          {
            name: 'JSON nested 5,000 deep',
            headers: { 'ce-id': id() },
            body: Buffer.from('['.repeat(5000) + ']'.repeat(5000)),
            reason: 'too-deep',
          },
        ];
      };

      it('dead-letters each poison message on sight with its reason, and handles the good ones around them in order', async () => {
        const sendRaw = h().sendRaw;
        if (!sendRaw) return; // this harness cannot put foreign messages on the wire
        const dest = await h().destination();
        const c = collector();
        const dead: DeadLetteredMessage[] = [];
        const stop = h().broker.onDeadLetter?.((event) => dead.push(event));
        const sub = await h().broker.subscribe(dest, c.handler);
        try {
          const key = `poison-${randomUUID()}`;
          const good = (n: number, headers: Record<string, string> = {}): RawTestMessage => ({
            key,
            headers: {
              'ce-id': `good-${n}-${randomUUID()}`,
              'ce-type': 'conformance.good',
              ...headers,
            },
            body: json({ n }),
          });
          const cases = poisonCases();
          const odd: Record<string, string> = {
            'x-odd': 'tab\there "quoted" \'single\' ünïcødé 😀',
          };
          if (h().headerLineBreaks !== false) odd['x-crlf'] = 'line\r\nbreak';
          const spacedHandled = (h().headerNameWithSpaces ?? 'handled') === 'handled';
          const sent = [
            good(0),
            ...cases.map((p) => ({ key, headers: p.headers, body: p.body })),
            good(1, { 'ce-time': 'not a date' }),
            good(2, odd),
            good(3, { 'x name with spaces': 'v' }),
            good(4),
          ];
          await sendRaw(dest, sent);
          const expected = spacedHandled ? [0, 1, 2, 3, 4] : [0, 1, 2, 4];
          const got = await c.until(expected.length);
          expect(got.map((m) => (m.payload as { n: number }).n)).toEqual(expected);
          expect(Number.isNaN(got[1]!.time.getTime())).toBe(false);
          expect(got[2]!.headers).toMatchObject(odd);
          const reasons: string[] = cases.map((p) => p.reason);
          if (!spacedHandled) reasons.push('bad-headers');
          if (stop) {
            await waitUntil(
              () => dead.length >= reasons.length,
              'every poison message dead-lettered',
            );
            expect(dead.map((d) => d.reason).sort()).toEqual(reasons.sort());
            for (const d of dead) {
              expect(d).toMatchObject({ destination: dest, attempts: 0 });
              expect(messageIdProblem(d.messageId)).toBeUndefined();
            }
          }
        } finally {
          stop?.();
          await sub.unsubscribe();
        }
      });

      it('dead-letters a message whose handler fails maxDeliveries times, and handles the next one of its key', async () => {
        const dest = await h().destination();
        const calls: string[] = [];
        const dead: DeadLetteredMessage[] = [];
        const stop = h().broker.onDeadLetter?.((event) => dead.push(event));
        const key = `k-${randomUUID()}`;
        const bad = message(dest, { key, payload: { fail: true } });
        const next = message(dest, { key, payload: { fail: false } });
        let handledNext = false;
        const sub = await h().broker.subscribe(
          dest,
          (m) => {
            calls.push(m.id);
            if ((m.payload as { fail: boolean }).fail)
              return Promise.reject(new Error('handler fails on purpose'));
            if (m.id === next.id) handledNext = true;
            return Promise.resolve();
          },
          { maxDeliveries: 2 },
        );
        try {
          await h().broker.publish([bad]);
          await h().broker.publish([next]);
          await waitUntil(
            () => handledNext,
            'the message after the poison one handled',
            h().deliveryTimeoutMs ?? 10_000,
          );
          expect(calls.filter((id) => id === bad.id)).toHaveLength(2);
          expect(calls.indexOf(next.id)).toBeGreaterThan(calls.lastIndexOf(bad.id));
          if (stop) {
            await waitUntil(() => dead.length > 0, 'the dead letter reported');
            expect(dead).toEqual([
              expect.objectContaining({ messageId: bad.id, reason: 'max-deliveries', attempts: 2 }),
            ]);
          }
        } finally {
          stop?.();
          await sub.unsubscribe();
        }
      });
    });

    it('close is idempotent and publish rejects afterwards', async () => {
      // Uses the suite's broker, so it runs last.
      await h().broker.close();
      await h().broker.close();
      await expect(h().broker.publish([message(await h().destination())])).rejects.toThrow();
      await expect(h().broker.health()).resolves.toMatchObject({ up: false });
    });
  });
}

/** What `expectKeyOrderUnderFailure` publishes and which message it makes fail. */
export interface KeyOrderUnderFailureOptions {
  /** Keys, each with its own sequence 0, 1, 2, … Default 4. */
  keys?: number;
  /** Messages per key. Default 8. */
  perKey?: number;
  /** The message whose handler throws: key index and sequence number. Default key 0, seq 2. */
  failing?: { key: number; seq: number };
  /** How many times the handler throws for it before it succeeds. Default 2. */
  failTimes?: number;
  /** Consumer group of the subscription. Default: the destination's default group. */
  group?: string;
  /**
   * Called in the handler of the failing message: `failed` after each failure (before it throws),
   * `succeeding` before the delivery that succeeds records it (e.g. to watch committed offsets
   * while it awaits redelivery). A rejection fails the test.
   */
  onFailingMessage?: (phase: 'failed' | 'succeeding') => Promise<void>;
  timeoutMs?: number;
}

/**
 * Per-key order across a handler failure: publishes `keys` × `perKey` messages, each
 * key's in sequence (one message per key per batch, batches in turn, as the relay does), to one
 * subscription whose handler throws `failTimes` times for one message. Asserts that the messages
 * handled successfully form, per key, exactly 0, 1, 2, … (a later message of the failing key is
 * never handled before the failed one succeeded; nothing lost, nothing handled twice), and that
 * the failing message's `deliveryAttempt` grows with each delivery.
 *
 * Not part of `describeBrokerConformance`: the in-memory broker redelivers without holding the key.
 */
export async function expectKeyOrderUnderFailure(
  broker: Broker,
  destination: string,
  options: KeyOrderUnderFailureOptions = {},
): Promise<void> {
  const keyCount = options.keys ?? 4;
  const perKey = options.perKey ?? 8;
  const failing = options.failing ?? { key: 0, seq: 2 };
  const failTimes = options.failTimes ?? 2;
  const timeoutMs = options.timeoutMs ?? 20_000;
  const run = randomUUID().slice(0, 8);
  const keys = Array.from({ length: keyCount }, (_, i) => `order-${run}-${i}`);
  const failingKey = keys[failing.key];
  const handled = new Map<string, number[]>(keys.map((k) => [k, []]));
  const failingAttempts: number[] = [];
  let failures = 0;
  let succeeded = 0;
  let hookError: Error | undefined;
  const hook = async (phase: 'failed' | 'succeeding'): Promise<void> => {
    try {
      await options.onFailingMessage?.(phase);
    } catch (error) {
      hookError ??=
        error instanceof Error ? error : new Error('onFailingMessage failed', { cause: error });
    }
  };

  const sub = await broker.subscribe(
    destination,
    async (m) => {
      const seq = (m.payload as { seq: number }).seq;
      if (m.key === failingKey && seq === failing.seq) {
        failingAttempts.push(m.deliveryAttempt);
        if (failures < failTimes) {
          failures++;
          await hook('failed');
          throw new Error(`handler fails on purpose (${failures} of ${failTimes})`);
        }
        await hook('succeeding');
      }
      handled.get(m.key ?? '')?.push(seq);
      succeeded++;
    },
    options.group === undefined ? {} : { group: options.group },
  );
  try {
    for (let seq = 0; seq < perKey; seq++) {
      const results = await broker.publish(
        keys.map((key) => ({
          id: randomUUID(),
          destination,
          key,
          type: 'conformance.ordered',
          payload: { seq },
          headers: {},
          time: new Date(),
        })),
      );
      expect(results.every((r) => r.ok)).toBe(true);
    }
    const deadline = Date.now() + timeoutMs;
    while (succeeded < keyCount * perKey && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
  } finally {
    await sub.unsubscribe();
  }
  if (hookError) throw hookError;
  const expected = Array.from({ length: perKey }, (_, i) => i);
  for (const key of keys)
    expect({ key, handled: handled.get(key) }).toEqual({ key, handled: expected });
  expect(failures).toBe(failTimes);
  expect(failingAttempts).toHaveLength(failTimes + 1);
  for (let i = 1; i < failingAttempts.length; i++)
    expect(failingAttempts[i]).toBeGreaterThan(failingAttempts[i - 1]!);
}
