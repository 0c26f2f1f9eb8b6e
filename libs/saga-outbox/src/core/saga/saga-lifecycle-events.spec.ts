import { InvalidOptionsError } from '../errors';
import type { NewOutboxMessage } from '../outbox/outbox-message';
import { OutboxPublisher } from '../outbox/outbox-publisher';
import type { OutboxWriter } from '../ports/outbox-store';
import { InMemorySagaStore, InMemoryTx } from '../../testing/in-memory-saga-store';
import { defineSaga } from './saga-builder';
import { SagaEngine } from './saga-engine';
import { MAX_EVENT_ERROR_LENGTH, SagaLifecycleEvents } from './saga-lifecycle-events';

/** An outbox whose rows appear only when the in-memory transaction commits. */
class CommittedOutbox implements OutboxWriter<InMemoryTx> {
  readonly rows: NewOutboxMessage[] = [];
  isTransaction(tx: InMemoryTx): boolean {
    return tx instanceof InMemoryTx;
  }
  insert(tx: InMemoryTx, messages: readonly NewOutboxMessage[]): Promise<void> {
    tx.onCommit(() => this.rows.push(...messages));
    return Promise.resolve();
  }
}

function engineWith(outbox: CommittedOutbox, store = new InMemorySagaStore()) {
  return new SagaEngine<InMemoryTx>({
    store,
    outbox: new OutboxPublisher({ writer: outbox }),
    lifecycleEvents: { destination: 'lifecycle' },
    recoveryIntervalMs: 10,
  });
}

const types = (outbox: CommittedOutbox, sagaId: string) =>
  outbox.rows
    .filter((r) => r.sagaId === sagaId)
    .map(
      (r) =>
        `${r.type}${(r.payload as { step: string | null }).step ? `:${(r.payload as { step: string }).step}` : ''}`,
    );

describe('saga lifecycle events (in-memory store)', () => {
  it('announces each committed change once; failed attempts announce nothing', async () => {
    const outbox = new CommittedOutbox();
    const engine = engineWith(outbox);
    let attempts = 0;
    engine.register(
      defineSaga<unknown, InMemoryTx>('flaky')
        .step('a', {
          retry: { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 1 },
          run: () => {
            if (++attempts < 3) throw new Error('not yet');
            return 1;
          },
          compensatable: false,
        })
        .build(),
    );
    const { sagaId } = await engine.start('flaky', {});
    expect((await engine.waitFor(sagaId)).status).toBe('completed');
    expect(types(outbox, sagaId)).toEqual([
      'sage.saga.started',
      'sage.saga.step-completed:a',
      'sage.saga.completed',
    ]);
    expect(outbox.rows.every((r) => r.key === sagaId && r.destination === 'lifecycle')).toBe(true);
    await engine.shutdown();
  });

  it('compensated: the failed step and its reason', async () => {
    const outbox = new CommittedOutbox();
    const engine = engineWith(outbox);
    engine.register(
      defineSaga<unknown, InMemoryTx>('undo')
        .step('a', { run: () => 1, compensate: () => undefined })
        .step('b', {
          dependsOn: ['a'],
          retry: { maxAttempts: 1 },
          run: () => {
            throw new Error('boom');
          },
          compensate: () => undefined,
        })
        .build(),
    );
    const { sagaId } = await engine.start('undo', {});
    expect((await engine.waitFor(sagaId)).status).toBe('compensated');
    expect(types(outbox, sagaId)).toEqual([
      'sage.saga.started',
      'sage.saga.step-completed:a',
      'sage.saga.compensated:b',
    ]);
    expect(outbox.rows.at(-1)!.payload).toMatchObject({
      status: 'compensated',
      step: 'b',
      error: expect.stringContaining('boom') as unknown,
    });
    await engine.shutdown();
  });

  it('cuts long errors so the event always fits the outbox', async () => {
    const outbox = new CommittedOutbox();
    const events = new SagaLifecycleEvents<InMemoryTx>(
      { destination: 'lifecycle' },
      new OutboxPublisher({ writer: outbox, maxMessageBytes: 16 * 1024 }),
    );
    const tx = new InMemoryTx();
    await events.write(tx, 'sage.saga.failed', {
      sagaId: '0190b1e4-0000-7000-8000-000000000000',
      saga: 's',
      status: 'failed',
      error: 'x'.repeat(1024 * 1024),
    });
    tx.commit();
    const error = (outbox.rows[0]!.payload as { error: string }).error;
    expect(error.length).toBe(MAX_EVENT_ERROR_LENGTH + 1);
    expect(error.endsWith('…')).toBe(true);
  });

  it('never cuts a surrogate pair in half', async () => {
    const outbox = new CommittedOutbox();
    const events = new SagaLifecycleEvents<InMemoryTx>(
      { destination: 'lifecycle' },
      new OutboxPublisher({ writer: outbox }),
    );
    const tx = new InMemoryTx();
    // The pair straddles the cut: "x…x" then an emoji whose high surrogate is the last unit kept.
    await events.write(tx, 'sage.saga.failed', {
      sagaId: '0190b1e4-0000-7000-8000-000000000000',
      saga: 's',
      status: 'failed',
      error: `${'x'.repeat(MAX_EVENT_ERROR_LENGTH - 1)}😀 tail`,
    });
    tx.commit();
    const error = (outbox.rows[0]!.payload as { error: string }).error;
    expect(error).toBe(`${'x'.repeat(MAX_EVENT_ERROR_LENGTH - 1)}…`);
    expect(error).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
  });

  it('needs a destination and an outbox', () => {
    const store = new InMemorySagaStore();
    expect(() => new SagaEngine({ store, lifecycleEvents: { destination: 'x' } })).toThrow(
      InvalidOptionsError,
    );
    expect(
      () =>
        new SagaEngine<InMemoryTx>({
          store,
          outbox: new OutboxPublisher({ writer: new CommittedOutbox() }),
          lifecycleEvents: { destination: ' ' },
        }),
    ).toThrow(InvalidOptionsError);
  });
});
