/**
 * Fewer commits per remote saga (issue 17): on real PostgreSQL, the statements the engine sends for
 * a 2-step saga (a local step, then a remote one) are counted at the driver
 * (test/support/statement-counter), not timed. The participant's reply is applied the way the reply
 * consumer applies it: `engine.applyReply` in the inbox transaction, `replyCommitted` after the
 * commit (the inbox's own dedup statements are left out: they are the same either way). When the
 * reply answers the saga's last open step and the saga is parked, that transaction completes the
 * saga too: no claim, no reload, no separate completion.
 */
import type { EntityManager } from 'typeorm';
import { countedSagas, deleteEffects, insertEffect } from '@test/support/counted-sagas';
import { transactionsOf } from '@test/support/statement-counter';
import { defineSaga, OutboxPublisher, PostgresOutboxStore, type SagaEvent } from '../../index';
import { stepIdempotencyKey } from '../../core/saga/saga-definition';
import type { SagaReplyOutcome } from '../../core/saga/saga-command';

const APP = 'sage-remote-commits';

describe('a remote saga commits its reply and its completion together (PostgreSQL)', () => {
  const sagas = countedSagas(APP);
  const { counter, events, seen } = sagas;

  beforeAll(async () => {
    const engine = await sagas.open((ds) => ({
      outbox: new OutboxPublisher({ writer: new PostgresOutboxStore(ds) }),
      replyTo: 'remote-commits.replies',
      // The background loops tick when woken (a reply) and otherwise not while counting.
      leaseMs: 600_000,
      recoveryIntervalMs: 600_000,
      random: () => 0,
    }));
    const saga = (name: string, options: { firstStepInStart?: boolean; timeoutMs?: number }) =>
      defineSaga<{ n: number }, EntityManager>(name, options)
        .step('reserve', { run: insertEffect, compensate: deleteEffects })
        .step('charge', {
          kind: 'remote',
          dependsOn: ['reserve'],
          compensatable: false,
          run: () => ({ destination: 'remote-commits.charges', type: 'charge', payload: {} }),
        })
        .build();
    engine.register(saga('local-then-remote', {}));
    engine.register(saga('local-then-remote-inline', { firstStepInStart: true }));
    engine.register(saga('local-then-remote-deadline', { timeoutMs: 300 }));
    await engine.startBackground();
  }, 30_000);

  afterAll(() => sagas.close(), 30_000);

  /** The participant's answer, applied as SagaReplyConsumer applies it. */
  const reply = async (sagaId: string, outcome: SagaReplyOutcome): Promise<void> => {
    const r = {
      sagaId,
      step: 'charge',
      phase: 'forward' as const,
      attempt: 1,
      idempotencyKey: stepIdempotencyKey(sagaId, 'charge', 'forward'),
      outcome,
    };
    const applied = await sagas.ds.transaction((tx) => sagas.engine.applyReply(tx, r));
    expect(applied).toBeDefined();
    sagas.engine.replyCommitted(r, applied!);
  };

  const runOne = async (
    n: number,
    outcome: SagaReplyOutcome,
    end: SagaEvent['type'],
    name = 'local-then-remote',
  ) => {
    const { sagaId } = await sagas.engine.start(name, { n });
    await seen(sagaId, 'saga.waiting');
    await reply(sagaId, outcome);
    await seen(sagaId, end);
    return sagaId;
  };

  it('a local step then a remote one: 5 write transactions (before: 7), the reply completing the saga', async () => {
    await runOne(-1, { ok: true, result: null }, 'saga.completed'); // warm-up
    counter.reset();
    const ids: string[] = [];
    const count = 4;
    for (let i = 0; i < count; i++)
      ids.push(await runOne(i, { ok: true, result: { i } }, 'saga.completed'));
    const tally = counter.tally();
    // Reported for the issue: statements and write transactions per saga.
    process.stdout.write(
      `remote 2-step per saga: ${tally.statements / count} statements, ${transactionsOf(tally) / count} write transactions, ${tally.commits / count} COMMITs ${JSON.stringify(tally.byKeyword)}\n`,
    );
    // start; reserve; charge (its command); park; the reply, completing the saga.
    expect(transactionsOf(tally) / count).toBe(5);
    for (const id of ids) {
      const saga = await sagas.engine.get(id);
      expect(saga.status).toBe('completed');
      expect(saga.owner).toBeNull();
      expect(saga.steps.map((s) => [s.name, s.status])).toEqual([
        ['reserve', 'completed'],
        ['charge', 'completed'],
      ]);
      expect(sagas.typesOf(id)).toEqual([
        'saga.started',
        'step.started',
        'step.completed',
        'step.started',
        'step.waiting',
        'saga.waiting',
        'step.completed',
        'saga.completed',
      ]);
    }
  });

  it('with firstStepInStart, 4 write transactions: start and the local step, the command, park, the reply', async () => {
    await runOne(-1, { ok: true, result: null }, 'saga.completed', 'local-then-remote-inline');
    counter.reset();
    const count = 3;
    for (let i = 0; i < count; i++)
      await runOne(i, { ok: true, result: null }, 'saga.completed', 'local-then-remote-inline');
    const tally = counter.tally();
    process.stdout.write(
      `remote 2-step with firstStepInStart, per saga: ${tally.statements / count} statements, ${transactionsOf(tally) / count} write transactions\n`,
    );
    expect(transactionsOf(tally) / count).toBe(4);
  });

  it('a success reply after the saga deadline does not complete it: the woken saga compensates for the timeout', async () => {
    const { sagaId } = await sagas.engine.start('local-then-remote-deadline', { n: 1 });
    await seen(sagaId, 'saga.waiting');
    const { deadlineAt } = await sagas.engine.get(sagaId);
    const [row] = await sagas.ds.query<{ past: boolean }[]>(
      'SELECT clock_timestamp() > $1::timestamptz AS past',
      [deadlineAt],
    );
    // Wait on the database clock, which the deadline is on.
    for (let past = row!.past; !past;) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      const [r] = await sagas.ds.query<{ past: boolean }[]>(
        'SELECT clock_timestamp() > $1::timestamptz AS past',
        [deadlineAt],
      );
      past = r!.past;
    }
    await reply(sagaId, { ok: true, result: null });
    await seen(sagaId, 'saga.compensated');
    const saga = await sagas.engine.get(sagaId);
    expect(saga.status).toBe('compensated');
    expect(saga.error).toContain('timed out');
    expect(events.filter((e) => e.sagaId === sagaId && e.type === 'saga.completed')).toEqual([]);
  });

  it('a failure reply wakes the saga, which compensates as before', async () => {
    const id = await runOne(9, { ok: false, error: 'card declined' }, 'saga.compensated');
    const saga = await sagas.engine.get(id);
    expect(saga.status).toBe('compensated');
    expect(saga.steps.map((s) => [s.name, s.status])).toEqual([
      ['reserve', 'compensated'],
      ['charge', 'failed'],
    ]);
  });
});
