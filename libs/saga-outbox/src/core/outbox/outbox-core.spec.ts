import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InMemoryOutboxStore } from '../../testing/in-memory-outbox-store';
import { InMemoryTx } from '../../testing/in-memory-saga-store';
import { InvalidOptionsError, NotSerializableError } from '../errors';
import { OutboxMessageInvalidError, OutboxMessageTooLargeError } from './outbox-errors';
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  prepareOutboxMessages,
  type OutboxMessageInput,
} from './outbox-message';
import { OutboxPublisher } from './outbox-publisher';
import { DEFAULT_OUTBOX_RETRY, failureOutcome, resolveOutboxRetryPolicy } from './outbox-retry';
import {
  OUTBOX_STATUSES,
  OUTBOX_TRANSITIONS,
  canTransition,
  outboxStateDiagram,
} from './outbox-transitions';

describe('outbox state transitions', () => {
  it('docs/outbox.md shows exactly the diagram generated from OUTBOX_TRANSITIONS', () => {
    const doc = readFileSync(join(__dirname, '../../../../../docs/outbox.md'), 'utf8');
    expect(doc).toContain(['```mermaid', outboxStateDiagram(), '```'].join('\n'));
  });

  it('every transition out of claimed is fenced except the reaper; sent is terminal', () => {
    for (const [name, t] of Object.entries(OUTBOX_TRANSITIONS)) {
      if ((t.from as readonly string[]).includes('claimed') && name !== 'reap')
        expect(t.fenced).toBe(true);
    }
    for (const name of Object.keys(OUTBOX_TRANSITIONS) as (keyof typeof OUTBOX_TRANSITIONS)[]) {
      expect(canTransition(name, 'sent')).toBe(false);
    }
    expect(canTransition('claim', 'pending')).toBe(true);
    expect(canTransition('claim', 'dead_letter')).toBe(false);
    expect(canTransition('replay', 'dead_letter')).toBe(true);
    const reachable = new Set(['pending', ...Object.values(OUTBOX_TRANSITIONS).map((t) => t.to)]);
    expect([...reachable].sort()).toEqual([...OUTBOX_STATUSES].sort());
  });
});

describe('retry policy', () => {
  const policy = resolveOutboxRetryPolicy({
    maxAttempts: 4,
    initialDelayMs: 100,
    maxDelayMs: 350,
    multiplier: 2,
    jitter: 0,
  });

  it('backs off exponentially up to the cap, then dead-letters at maxAttempts', () => {
    expect(failureOutcome(policy, 0, true)).toEqual({ kind: 'retry', delayMs: 100 });
    expect(failureOutcome(policy, 1, true)).toEqual({ kind: 'retry', delayMs: 200 });
    expect(failureOutcome(policy, 2, true)).toEqual({ kind: 'retry', delayMs: 350 });
    expect(failureOutcome(policy, 3, true)).toEqual({ kind: 'dead_letter' });
  });

  it('dead-letters non-retryable failures at once', () => {
    expect(failureOutcome(policy, 0, false)).toEqual({ kind: 'dead_letter' });
  });

  it('jitter stays within [delay * (1 - jitter), delay]', () => {
    const jittered = resolveOutboxRetryPolicy({ initialDelayMs: 1000, jitter: 0.5 });
    expect(failureOutcome(jittered, 0, true, () => 0)).toEqual({ kind: 'retry', delayMs: 1000 });
    expect(failureOutcome(jittered, 0, true, () => 0.999999)).toEqual({
      kind: 'retry',
      delayMs: 500,
    });
  });

  it('rejects invalid policies with the option named', () => {
    expect(() => resolveOutboxRetryPolicy({ maxAttempts: 0 })).toThrow(InvalidOptionsError);
    expect(() => resolveOutboxRetryPolicy({ jitter: 2 })).toThrow(/outbox.retry.jitter/);
    expect(resolveOutboxRetryPolicy()).toEqual(DEFAULT_OUTBOX_RETRY);
  });
});

describe('message validation', () => {
  const ok = { destination: 'orders', type: 'order.placed', payload: { id: 1 } };

  it('fills defaults: UUIDv7 id, null key and saga, empty headers', () => {
    const [m] = prepareOutboxMessages([ok]);
    expect(m).toMatchObject({
      destination: 'orders',
      type: 'order.placed',
      key: null,
      sagaId: null,
      headers: {},
    });
    expect(m!.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it.each([
    [{ ...ok, destination: '' }, /destination/],
    [{ ...ok, type: undefined }, /type/],
    [{ ...ok, key: '' }, /key/],
    [{ ...ok, headers: { a: 1 } }, /headers.a/],
    [{ ...ok, sagaId: 'nope' }, /sagaId/],
    [{ ...ok, id: 'nope' }, /id/],
  ])('rejects %j', (input, message) => {
    expect(() => prepareOutboxMessages([ok, input as never])).toThrow(OutboxMessageInvalidError);
    expect(() => prepareOutboxMessages([input as never])).toThrow(message);
  });

  it('rejects non-JSON payloads and oversized messages', () => {
    expect(() => prepareOutboxMessages([{ ...ok, payload: { n: NaN } }])).toThrow(
      NotSerializableError,
    );
    expect(() =>
      prepareOutboxMessages([{ ...ok, payload: 'é'.repeat(60) }], { maxMessageBytes: 100 }),
    ).toThrow(OutboxMessageTooLargeError);
    expect(() =>
      prepareOutboxMessages([{ ...ok, payload: 'x'.repeat(DEFAULT_MAX_MESSAGE_BYTES) }]),
    ).toThrow(/1048576-byte limit/);
    expect(() => prepareOutboxMessages([ok], { maxMessageBytes: 0 })).toThrow(InvalidOptionsError);
  });
});

describe('text PostgreSQL cannot store, refused before anything is written', () => {
  const ok = {
    destination: 'orders',
    type: 'order.placed',
    key: 'order-1',
    payload: { id: 1 },
    headers: { traceparent: '00-abc-def-01' },
  };
  const bad = [
    ['NUL', 'a\u0000b', /contains the NUL character \(\\u0000\)/],
    ['a lone high surrogate', 'a\ud800', /contains an unpaired UTF-16 surrogate/],
    ['a lone low surrogate', '\udc00b', /contains an unpaired UTF-16 surrogate/],
  ] as const;
  const fields: [string, (text: string) => OutboxMessageInput, string][] = [
    ['destination', (t) => ({ ...ok, destination: t }), 'destination'],
    ['type', (t) => ({ ...ok, type: t }), 'type'],
    ['key', (t) => ({ ...ok, key: t }), 'key'],
    ['a header name', (t) => ({ ...ok, headers: { ...ok.headers, [t]: 'v' } }), 'headers'],
    ['a header value', (t) => ({ ...ok, headers: { ...ok.headers, x: t } }), 'headers.x'],
  ];
  const cases = fields.flatMap(([label, message, field]) =>
    bad.map(([what, text, problem]) => [label, what, message(text), field, problem] as const),
  );

  it.each(cases)(
    '%s with %s: OutboxMessageInvalidError naming the field',
    (_f, _w, input, field, problem) => {
      let caught: unknown;
      try {
        prepareOutboxMessages([ok, input]);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(OutboxMessageInvalidError);
      const error = caught as OutboxMessageInvalidError;
      expect(error.index).toBe(1);
      expect(error.field).toBe(field);
      expect(error.message).toMatch(problem);
      expect(error.message).toContain('PostgreSQL cannot store it as given');
      expect(error.message).toContain('Nothing was written.');
      // The message itself is storable (it may end up in logs and error columns).
      expect(error.message).not.toContain('\u0000');
      expect(error.message).not.toMatch(/[\ud800-\udfff]/);
    },
  );

  it.each(cases)(
    '%s with %s: publish() writes nothing, not even the valid messages',
    async (_f, _w, input) => {
      const writer = new InMemoryOutboxStore();
      const insert = jest.spyOn(writer, 'insert');
      const publisher = new OutboxPublisher<InMemoryTx>({ writer });
      const tx = new InMemoryTx();
      await expect(publisher.publish([ok, input], { manager: tx })).rejects.toBeInstanceOf(
        OutboxMessageInvalidError,
      );
      expect(insert).not.toHaveBeenCalled();
      tx.commit();
      expect(await writer.claim('relay', 10, 1_000)).toEqual([]);
    },
  );

  it('accepts surrogate pairs (emoji) and escaped text everywhere', () => {
    const [m] = prepareOutboxMessages([
      {
        destination: 'orders.😀',
        type: 'order.placed',
        key: 'key-😀-\\0',
        payload: {},
        headers: { 'x-😀': '😀 \\u0000' },
      },
    ]);
    expect(m).toMatchObject({ key: 'key-😀-\\0', headers: { 'x-😀': '😀 \\u0000' } });
  });
});
