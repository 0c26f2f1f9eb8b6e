import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Broker, BrokerMessage, DeliveredMessage } from '../core/ports/broker';

/** What a broker adapter hands the conformance suite. */
export interface BrokerConformanceHarness {
  broker: Broker;
  /** A destination no other test uses (unique topic / queue / subject), created if the broker needs that. */
  destination(): Promise<string>;
  /** Releases what the factory opened (the suite closes the broker itself). */
  cleanup(): Promise<void>;
  /** How long to wait for a delivery before failing. Default 10000. */
  deliveryTimeoutMs?: number;
}

/**
 * The tests every Broker adapter must pass, through the port only (DESIGN §5): one result per
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

    it('close is idempotent and publish rejects afterwards', async () => {
      // Uses the suite's broker, so it runs last.
      await h().broker.close();
      await h().broker.close();
      await expect(h().broker.publish([message(await h().destination())])).rejects.toThrow();
      await expect(h().broker.health()).resolves.toMatchObject({ up: false });
    });
  });
}
