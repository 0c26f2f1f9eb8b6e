import { InvalidOptionsError } from '../core/errors';
import { InMemoryInboxStore } from '../testing/in-memory-inbox-store';
import { InMemoryOutboxStore } from '../testing/in-memory-outbox-store';
import { InboxRetention } from '../core/inbox/inbox-retention';
import { OutboxRetention } from '../core/outbox/outbox-retention';
import { SagaRetention } from '../core/saga/saga-retention';
import { validateModuleOptions } from './saga-outbox.options';

function rejection(fn: () => unknown): InvalidOptionsError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidOptionsError);
    return error as InvalidOptionsError;
  }
  throw new Error('expected InvalidOptionsError');
}
const invalid = (options: unknown) => rejection(() => validateModuleOptions(options as never));

describe('retention options at the module boundary', () => {
  it('accepts the documented shapes', () => {
    expect(() =>
      validateModuleOptions({
        saga: { retention: { enabled: true, retentionMs: 0, batchSize: 500, intervalMs: 60_000 } },
        outbox: {
          retention: {
            retentionMs: 3_600_000,
            deadLetterTtlMs: 90 * 86_400_000,
            archive: { keepMs: 365 * 86_400_000 },
            maxBatchesPerRun: 10,
            vacuumAfterRows: 0,
          },
        },
        inbox: { retention: { enabled: false, deadLetterTtlMs: 86_400_000 } },
      }),
    ).not.toThrow();
    expect(() => validateModuleOptions({ outbox: { retention: { archive: {} } } })).not.toThrow();
  });

  it.each([
    [{ saga: { retention: 30 } }, 'saga.retention', 'must be an object'],
    [{ saga: { retention: { retentionMS: 1 } } }, 'saga.retention.retentionMS', 'unknown option'],
    [
      { saga: { retention: { deadLetterTtlMs: 1 } } },
      'saga.retention.deadLetterTtlMs',
      'unknown option',
    ],
    [{ saga: { retention: { enabled: 'no' } } }, 'saga.retention.enabled', 'must be true or false'],
    [
      { saga: { retention: { retentionMs: -1 } } },
      'saga.retention.retentionMs',
      'must be a number >= 0',
    ],
    [
      { saga: { retention: { batchSize: 1.5 } } },
      'saga.retention.batchSize',
      'must be an integer >= 1',
    ],
    [
      { saga: { retention: { intervalMs: 0 } } },
      'saga.retention.intervalMs',
      'must be a positive number',
    ],
    [
      { outbox: { retention: { deadLetterTtlMs: 0 } } },
      'outbox.retention.deadLetterTtlMs',
      'must be a positive number',
    ],
    [{ outbox: { retention: { archive: true } } }, 'outbox.retention.archive', 'must be an object'],
    [
      { outbox: { retention: { archive: { keep: 1 } } } },
      'outbox.retention.archive.keep',
      'unknown option; known options: keepMs',
    ],
    [
      { outbox: { retention: { archive: { keepMs: Infinity } } } },
      'outbox.retention.archive.keepMs',
      'must be a positive number',
    ],
    [{ inbox: { retention: { archive: {} } } }, 'inbox.retention.archive', 'unknown option'],
    [
      { inbox: { retention: { deadLetterTtlMs: '7d' } } },
      'inbox.retention.deadLetterTtlMs',
      'must be a positive number',
    ],
  ])('%j is refused naming %s', (options, option, problem) => {
    const error = invalid(options);
    expect(error.option).toBe(option);
    expect(error.message).toContain(problem);
  });
});

describe('retention loops refuse what their store cannot do', () => {
  it('archive and dead-letter TTL need a store that implements them', () => {
    const outbox = new InMemoryOutboxStore();
    expect(rejection(() => new OutboxRetention({ store: outbox, archive: {} })).option).toBe(
      'outbox.retention.archive',
    );
    expect(
      rejection(() => new OutboxRetention({ store: outbox, deadLetterTtlMs: 1000 })).option,
    ).toBe('outbox.retention.deadLetterTtlMs');
    expect(
      rejection(
        () => new InboxRetention({ store: new InMemoryInboxStore(), deadLetterTtlMs: 1000 }),
      ).message,
    ).toContain('cannot do it; use the PostgreSQL store, or remove the option');
    // Without those options the in-memory stores are fine.
    expect(() => new OutboxRetention({ store: outbox })).not.toThrow();
  });

  it('saga retention defaults to 30 days and reports leader: false while another process holds the lock', async () => {
    const calls: number[] = [];
    const retention = new SagaRetention({
      store: {
        deleteTerminalSagaBatch: (olderThanMs, limit) => {
          calls.push(olderThanMs);
          return Promise.resolve(calls.length === 1 ? null : Math.min(limit, 1));
        },
      },
    });
    expect(retention.retentionMs).toBe(30 * 24 * 3_600_000);
    expect(await retention.runOnce()).toEqual({ leader: false, deleted: 0 });
    expect(await retention.runOnce()).toEqual({ leader: true, deleted: 1 });
    expect(calls).toEqual([30 * 24 * 3_600_000, 30 * 24 * 3_600_000]);
    expect(
      rejection(
        () =>
          new SagaRetention({
            store: { deleteTerminalSagaBatch: () => Promise.resolve(0) },
            batchSize: 0,
          }),
      ).option,
    ).toBe('saga.retention.batchSize');
  });
});
