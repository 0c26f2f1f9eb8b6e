import { SagaDefinitionError } from '../errors';
import type { JsonValue } from '../json';
import { OutboxPublisher } from '../outbox/outbox-publisher';
import type { NewOutboxMessage } from '../outbox/outbox-message';
import type { OutboxWriter } from '../ports/outbox-store';
import type { SagaRecord } from '../ports/saga-store';
import { InMemorySagaStore, InMemoryTx } from '../../testing/in-memory-saga-store';
import { deferred, waitUntil } from '../../testing/async';
import { defineSaga } from './saga-builder';
import { MessageRefusedError } from '../inbox/message-refused';
import { parseSagaCommand, SAGA_HEADERS, type ReceivedSagaCommand } from './saga-command';
import { SagaEngine, type SagaEngineOptions } from './saga-engine';
import type { SagaEvent } from './saga-events';

/** The orchestrator's outbox: rows appear only when the step's transaction commits. */
class CommittedOutbox implements OutboxWriter<InMemoryTx> {
  readonly rows: NewOutboxMessage[] = [];
  isTransaction(tx: InMemoryTx): boolean {
    return tx instanceof InMemoryTx;
  }
  insert(tx: InMemoryTx, messages: readonly NewOutboxMessage[]): Promise<void> {
    tx.onCommit(() => this.rows.push(...messages));
    return Promise.resolve();
  }
  commands(type?: string): ReceivedSagaCommand[] {
    return this.rows
      .filter((m) => type === undefined || m.type === type)
      .map((m) =>
        parseSagaCommand({ id: m.id, type: m.type, payload: m.payload, headers: m.headers }),
      );
  }
}

const engines: SagaEngine<InMemoryTx>[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.shutdown()));
});

function setup(options: Partial<SagaEngineOptions<InMemoryTx>> = {}) {
  const store = new InMemorySagaStore();
  const outbox = new CommittedOutbox();
  const engine = new SagaEngine<InMemoryTx>({
    store,
    outbox: new OutboxPublisher({ writer: outbox }),
    replyTo: 'orders.replies',
    shutdownTimeoutMs: 50,
    random: () => 0,
    // Long by default: a test passing with it proves replies resume sagas without polling.
    recoveryIntervalMs: 60_000,
    ...options,
  });
  engines.push(engine);
  const events: SagaEvent[] = [];
  engine.onEvent((e) => events.push(e));
  /** The participant's answer, applied as the reply consumer does: in a transaction, then a wake-up. */
  const reply = async (
    command: ReceivedSagaCommand,
    outcome: { ok: true; result: JsonValue } | { ok: false; error: string },
  ): Promise<'applied' | 'ignored'> => {
    const tx = new InMemoryTx();
    const reply = {
      sagaId: command.sagaId,
      step: command.step,
      phase: command.phase,
      attempt: command.attempt,
      idempotencyKey: command.idempotencyKey,
      outcome,
    };
    const applied = await engine.applyReply(tx, reply);
    tx.commit();
    if (!applied) return 'ignored';
    engine.replyCommitted(reply, applied);
    return 'applied';
  };
  return { store, outbox, engine, events, reply };
}

const local = (journal: string[], name: string) => ({
  run: (ctx: { manager: InMemoryTx; results: Readonly<Record<string, JsonValue>> }) => {
    ctx.manager.onCommit(() => journal.push(`do:${name}`));
    return { [name]: true, saw: Object.keys(ctx.results).sort() };
  },
  compensate: (ctx: { manager: InMemoryTx }) => {
    ctx.manager.onCommit(() => journal.push(`undo:${name}`));
  },
});

function orderSaga(
  journal: string[],
  payOptions: { timeoutMs?: number; maxAttempts?: number } = {},
) {
  const a = local(journal, 'reserve');
  const c = local(journal, 'confirm');
  return defineSaga<{ amount: number }, InMemoryTx>('order')
    .step('reserve', { run: a.run, compensate: a.compensate })
    .step('pay', {
      kind: 'remote',
      dependsOn: ['reserve'],
      timeoutMs: payOptions.timeoutMs ?? 60_000,
      retry: { maxAttempts: payOptions.maxAttempts ?? 1, initialDelayMs: 0 },
      run: (ctx) => ({
        destination: 'payments.commands',
        type: 'payment.authorize',
        payload: { amount: ctx.input.amount },
      }),
      compensate: () => ({ destination: 'payments.commands', type: 'payment.void', payload: null }),
    })
    .step('confirm', { run: c.run, dependsOn: ['pay'], compensatable: false })
    .build();
}

async function waitStatus(
  engine: SagaEngine<InMemoryTx>,
  sagaId: string,
  status: SagaRecord['status'],
): Promise<SagaRecord> {
  let record: SagaRecord | undefined;
  await waitUntil(
    async () => (record = await engine.get(sagaId)).status === status,
    `saga ${sagaId} to be ${status}`,
    5_000,
  );
  return record!;
}

describe('remote (command/reply) steps', () => {
  it('refuses a reply that answers no command sent; a late one is ignored, not refused', async () => {
    const journal: string[] = [];
    const { outbox, engine, reply } = setup();
    engine.register(orderSaga(journal));
    await engine.startBackground();
    const { sagaId } = await engine.start('order', { amount: 5 });
    await waitStatus(engine, sagaId, 'waiting');
    const [sent] = outbox.commands('payment.authorize');
    const refusal = (forged: Partial<ReceivedSagaCommand>) =>
      reply({ ...sent!, ...forged }, { ok: true, result: null }).then(
        (outcome) => outcome,
        (error: unknown) => (error instanceof MessageRefusedError ? error.reason : error),
      );
    await expect(refusal({ idempotencyKey: `${sagaId}:reserve` })).resolves.toBe(
      'reply-key-mismatch',
    );
    await expect(refusal({ attempt: 2 })).resolves.toBe('reply-attempt-unknown');
    await expect(
      refusal({ phase: 'compensate', idempotencyKey: `${sagaId}:pay:compensate` }),
    ).resolves.toBe('reply-attempt-unknown');
    await expect(refusal({ step: 'reserve', idempotencyKey: `${sagaId}:reserve` })).resolves.toBe(
      'reply-step-unknown',
    );
    await expect(refusal({ step: 'ship', idempotencyKey: `${sagaId}:ship` })).resolves.toBe(
      'reply-step-unknown',
    );
    expect((await engine.get(sagaId)).steps.find((s) => s.name === 'pay')?.status).toBe('waiting');
    await expect(reply(sent!, { ok: true, result: { auth: 1 } })).resolves.toBe('applied');
    await waitStatus(engine, sagaId, 'completed');
    await expect(reply(sent!, { ok: true, result: { auth: 2 } })).resolves.toBe('ignored');
  });

  it('sends the command in the step transaction, parks the saga, and resumes it with the reply', async () => {
    const journal: string[] = [];
    const { outbox, engine, events, reply } = setup();
    engine.register(orderSaga(journal));
    await engine.startBackground();
    const { sagaId } = await engine.start('order', { amount: 42 });

    const parked = await waitStatus(engine, sagaId, 'waiting');
    expect(parked.owner).toBeNull();
    expect(parked.steps.find((s) => s.name === 'pay')).toMatchObject({ status: 'waiting' });
    const [command] = outbox.commands('payment.authorize');
    expect(command).toMatchObject({
      sagaId,
      saga: 'order',
      step: 'pay',
      phase: 'forward',
      attempt: 1,
      idempotencyKey: `${sagaId}:pay`,
      replyTo: 'orders.replies',
      payload: { amount: 42 },
    });
    expect(outbox.rows[0]).toMatchObject({ key: sagaId, sagaId, destination: 'payments.commands' });
    expect(events.map((e) => e.type)).toContain('saga.waiting');

    await expect(reply(command!, { ok: true, result: { authorizationId: 'au-1' } })).resolves.toBe(
      'applied',
    );
    // The reply is reported as the step completing (metrics see remote steps' durations too).
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'step.completed', step: 'pay', attempt: 1, saga: 'order' }),
    );
    const done = await engine.waitFor(sagaId, { timeoutMs: 5_000 });
    expect(done.status).toBe('completed');
    expect(done.steps.find((s) => s.name === 'pay')?.result).toEqual({ authorizationId: 'au-1' });
    // The next step saw the reply's result.
    expect(done.steps.find((s) => s.name === 'confirm')?.result).toEqual({
      confirm: true,
      saw: ['pay', 'reserve'],
    });
    expect(journal).toEqual(['do:reserve', 'do:confirm']);
    // A duplicate reply changes nothing.
    await expect(reply(command!, { ok: true, result: 'again' })).resolves.toBe('ignored');
  });

  it('a rejection fails the step: earlier steps are compensated, the rejected one is not', async () => {
    const journal: string[] = [];
    const { outbox, engine, reply } = setup();
    engine.register(orderSaga(journal));
    await engine.startBackground();
    const { sagaId } = await engine.start('order', { amount: 1 });
    await waitStatus(engine, sagaId, 'waiting');
    await reply(outbox.commands()[0]!, { ok: false, error: 'card declined' });
    const done = await engine.waitFor(sagaId, { timeoutMs: 5_000 });
    expect(done.status).toBe('compensated');
    expect(done.error).toContain('card declined');
    expect(done.steps.find((s) => s.name === 'pay')).toMatchObject({ status: 'failed' });
    expect(journal).toEqual(['do:reserve', 'undo:reserve']);
    expect(outbox.commands('payment.void')).toHaveLength(0);
  });

  it('resends on reply timeout with the same idempotency key, then times out and compensates remotely', async () => {
    const journal: string[] = [];
    const { outbox, engine, reply } = setup({ recoveryIntervalMs: 10 });
    engine.register(orderSaga(journal, { timeoutMs: 60, maxAttempts: 2 }));
    await engine.startBackground();
    const { sagaId } = await engine.start('order', { amount: 5 });

    // No participant answers: attempt 1, then 2, then the step times out and compensation sends void.
    await waitUntil(() => outbox.commands('payment.void').length === 1, 'the void command', 5_000);
    const sent = outbox.commands('payment.authorize');
    expect(sent.map((c) => c.attempt)).toEqual([1, 2]);
    expect(new Set(sent.map((c) => c.idempotencyKey))).toEqual(new Set([`${sagaId}:pay`]));
    const voidCommand = outbox.commands('payment.void')[0]!;
    expect(voidCommand).toMatchObject({
      phase: 'compensate',
      idempotencyKey: `${sagaId}:pay:compensate`,
    });
    const compensating = await engine.get(sagaId);
    expect(compensating.status).toBe('compensating');
    expect(compensating.steps.find((s) => s.name === 'pay')).toMatchObject({
      status: 'compensating',
    });
    // The reserve step is not undone before the later step's compensation is acknowledged.
    expect(journal).toEqual(['do:reserve']);
    // A late forward reply is ignored now; the void reply finishes compensation.
    await expect(reply(sent[0]!, { ok: true, result: 'late' })).resolves.toBe('ignored');
    await expect(reply(voidCommand, { ok: true, result: null })).resolves.toBe('applied');
    const done = await engine.waitFor(sagaId, { timeoutMs: 5_000 });
    expect(done.status).toBe('compensated');
    expect(done.steps.find((s) => s.name === 'pay')).toMatchObject({ status: 'compensated' });
    expect(journal).toEqual(['do:reserve', 'undo:reserve']);
  });

  it("a remote step's compensation names what to undo by ctx.forwardIdempotencyKey, the forward command's key", async () => {
    const { outbox, engine, reply } = setup();
    engine.register(
      defineSaga<{ amount: number }, InMemoryTx>('charge-then-ship')
        .step('pay', {
          kind: 'remote',
          retry: { maxAttempts: 1, initialDelayMs: 0 },
          run: (ctx) => ({
            destination: 'payments.commands',
            type: 'payment.authorize',
            payload: { amount: ctx.input.amount },
          }),
          compensate: (ctx) => ({
            destination: 'payments.commands',
            type: 'payment.void',
            payload: { authorizationKey: ctx.forwardIdempotencyKey },
          }),
        })
        .step('ship', {
          dependsOn: ['pay'],
          compensatable: false,
          retry: { maxAttempts: 1, initialDelayMs: 0 },
          run: () => Promise.reject(new Error('no stock')),
        })
        .build(),
    );
    await engine.startBackground();
    const { sagaId } = await engine.start('charge-then-ship', { amount: 3 });
    await waitStatus(engine, sagaId, 'waiting');
    const [authorize] = outbox.commands('payment.authorize');
    await reply(authorize!, { ok: true, result: { authorizationId: 'au-3' } });
    await waitUntil(() => outbox.commands('payment.void').length === 1, 'the void command', 5_000);
    const [voidCommand] = outbox.commands('payment.void');
    expect(voidCommand).toMatchObject({
      idempotencyKey: `${sagaId}:pay:compensate`,
      payload: { authorizationKey: authorize!.idempotencyKey },
    });
    expect(authorize!.idempotencyKey).toBe(`${sagaId}:pay`);
  });

  it('accepts the reply to an earlier attempt after a resend', async () => {
    const journal: string[] = [];
    const { outbox, engine, reply } = setup({ recoveryIntervalMs: 10 });
    engine.register(orderSaga(journal, { timeoutMs: 60, maxAttempts: 5 }));
    await engine.startBackground();
    const { sagaId } = await engine.start('order', { amount: 5 });
    await waitUntil(
      () => outbox.commands('payment.authorize').length >= 2,
      'a resend of the command',
      5_000,
    );
    await reply(outbox.commands('payment.authorize')[0]!, { ok: true, result: 'first' });
    const done = await engine.waitFor(sagaId, { timeoutMs: 5_000 });
    expect(done.status).toBe('completed');
    expect(done.steps.find((s) => s.name === 'pay')?.result).toBe('first');
  });

  it('a reply arriving while a parallel local step still runs is not lost: the saga goes on without polling', async () => {
    const gate = deferred();
    const started = deferred();
    const { outbox, engine, reply } = setup();
    engine.register(
      defineSaga<unknown, InMemoryTx>('fanout')
        .step('remote', {
          kind: 'remote',
          compensatable: false,
          run: () => ({ destination: 'p.commands', type: 'p.do', payload: null }),
        })
        .step('slow', {
          compensatable: false,
          run: async () => {
            started.resolve();
            await gate.promise;
            return 'slow';
          },
        })
        .step('after', { run: () => 'after', dependsOn: ['remote', 'slow'], compensatable: false })
        .build(),
    );
    await engine.startBackground();
    const { sagaId } = await engine.start('fanout', {});
    await started.promise;
    await waitUntil(() => outbox.commands('p.do').length === 1, 'the command', 5_000);
    // The runner still owns the saga (the slow step runs): the reply lands meanwhile.
    await reply(outbox.commands('p.do')[0]!, { ok: true, result: 'r' });
    gate.resolve();
    // Recovery polls once a minute here: only the runner noticing the reply can finish in time.
    const done = await engine.waitFor(sagaId, { timeoutMs: 5_000 });
    expect(done.status).toBe('completed');
    expect(done.steps.map((s) => [s.name, s.status])).toEqual([
      ['remote', 'completed'],
      ['slow', 'completed'],
      ['after', 'completed'],
    ]);
  });

  it('a remote step returning something that is not a command fails without retrying', async () => {
    const { engine } = setup();
    engine.register(
      defineSaga<unknown, InMemoryTx>('bad')
        .step('remote', {
          kind: 'remote',
          compensatable: false,
          retry: { maxAttempts: 5, initialDelayMs: 0 },
          run: () => ({ type: 'x' }),
        })
        .build(),
    );
    const { sagaId } = await engine.start('bad', {});
    const done = await engine.waitFor(sagaId, { timeoutMs: 5_000 });
    expect(done.status).toBe('compensated');
    expect(done.steps[0]).toMatchObject({ status: 'failed', attempts: 1 });
    expect(done.error).toContain('destination');
  });

  it('refuses to register a saga with a remote step without a reply destination', () => {
    const engine = new SagaEngine<InMemoryTx>({ store: new InMemorySagaStore() });
    engines.push(engine);
    expect(() => engine.register(orderSaga([]))).toThrow(SagaDefinitionError);
    expect(() => engine.register(orderSaga([]))).toThrow(/replyTo/);
  });

  it('the version of a definition changes when a step becomes remote, and not otherwise', () => {
    const build = (remote: boolean) =>
      defineSaga<unknown, InMemoryTx>('v')
        .step('a', {
          kind: remote ? 'remote' : 'local',
          compensatable: false,
          run: () => ({ destination: 'd', type: 't', payload: null }),
        })
        .build().version;
    expect(build(true)).not.toBe(build(false));
    expect(
      defineSaga<unknown, InMemoryTx>('v')
        .step('a', { run: () => null, compensatable: false })
        .build().version,
    ).toBe(build(false));
  });

  it('puts the Sage headers on the command', async () => {
    const { outbox, engine } = setup();
    engine.register(orderSaga([]));
    const { sagaId } = await engine.start('order', { amount: 2 });
    await waitStatus(engine, sagaId, 'waiting');
    expect(outbox.rows[0]!.headers).toMatchObject({
      [SAGA_HEADERS.sagaId]: sagaId,
      [SAGA_HEADERS.step]: 'pay',
      [SAGA_HEADERS.replyTo]: 'orders.replies',
    });
  });
});
