import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { waitUntil } from '../../testing/async';
import { InMemoryInboxStore } from '../../testing/in-memory-inbox-store';
import { InMemorySagaStore, InMemoryTx } from '../../testing/in-memory-saga-store';
import { InboxHandlerFailedError } from '../inbox/inbox-errors';
import { InboxProcessor } from '../inbox/inbox-processor';
import { deliverThroughInbox, InboxSubscriptions } from '../inbox/inbox-subscription';
import type { NewOutboxMessage } from '../outbox/outbox-message';
import { OutboxPublisher } from '../outbox/outbox-publisher';
import type { DeliveredMessage } from '../ports/broker';
import type { OutboxWriter } from '../ports/outbox-store';
import { defineSaga } from '../saga/saga-builder';
import {
  parseSagaCommand,
  SAGA_HEADERS,
  SAGA_REPLY_TYPE,
  sagaReplyMessage,
  type ReceivedSagaCommand,
} from '../saga/saga-command';
import { SagaEngine } from '../saga/saga-engine';
import type { SagaEvent } from '../saga/saga-events';
import {
  participantInboxEndpoint,
  rejectCommand,
  type SagaCommandHandlerEntry,
} from './participant-protocol';
import {
  DEFAULT_SAGA_REPLY_CONSUMER,
  sagaReplyDestination,
  sagaReplyInboxEndpoint,
} from './reply-protocol';

/** An outbox whose rows are published to `broker` once their transaction commits (the relay's job). */
class RelayedOutbox implements OutboxWriter<InMemoryTx> {
  readonly rows: NewOutboxMessage[] = [];
  constructor(private readonly broker?: InMemoryBroker) {}
  isTransaction(tx: InMemoryTx): boolean {
    return tx instanceof InMemoryTx;
  }
  insert(tx: InMemoryTx, messages: readonly NewOutboxMessage[]): Promise<void> {
    tx.onCommit(() => {
      this.rows.push(...messages);
      void this.broker?.publish(
        messages.map(({ sagaId: _, ...m }) => ({ ...m, time: new Date() })),
      );
    });
    return Promise.resolve();
  }
  commands(type?: string): ReceivedSagaCommand[] {
    return this.rows
      .filter((m) => type === undefined || m.type === type)
      .map((m) => parseSagaCommand(m));
  }
}

const REPLIES = 'checkout.replies';
const engines: SagaEngine<InMemoryTx>[] = [];
const subscriptions: InboxSubscriptions<InMemoryTx>[] = [];
afterEach(async () => {
  await Promise.all(subscriptions.splice(0).map((s) => s.unsubscribeAll()));
  await Promise.all(engines.splice(0).map((e) => e.shutdown()));
});

function checkoutSaga(journal: string[]) {
  return defineSaga<{ card: string }, InMemoryTx>('checkout')
    .step('reserve', {
      run: (ctx) => ctx.manager.onCommit(() => journal.push('reserve')),
      compensate: (ctx) => ctx.manager.onCommit(() => journal.push('release')),
    })
    .step('charge', {
      kind: 'remote',
      dependsOn: ['reserve'],
      timeoutMs: 60_000,
      retry: { maxAttempts: 1, initialDelayMs: 0 },
      run: (ctx) => ({
        destination: 'cards',
        type: 'card.charge',
        payload: { card: ctx.input.card },
      }),
      compensate: () => ({ destination: 'cards', type: 'card.refund', payload: null }),
    })
    .build();
}

function orchestrator(broker?: InMemoryBroker) {
  const outbox = new RelayedOutbox(broker);
  const engine = new SagaEngine<InMemoryTx>({
    store: new InMemorySagaStore(),
    outbox: new OutboxPublisher({ writer: outbox }),
    replyTo: REPLIES,
    shutdownTimeoutMs: 50,
    random: () => 0,
    // Long: a saga resuming at once proves the reply woke it, not a recovery round.
    recoveryIntervalMs: 60_000,
  });
  engines.push(engine);
  const events: SagaEvent[] = [];
  engine.onEvent((e) => events.push(e));
  const inboxStore = new InMemoryInboxStore();
  const inbox = new InboxProcessor<InMemoryTx>({ store: inboxStore, maxAttempts: 2 });
  const endpoint = sagaReplyInboxEndpoint(engine, REPLIES);
  return { engine, outbox, events, inbox, inboxStore, endpoint };
}

/** The reply a participant would send for `command`, as delivered. */
function replyTo(
  command: ReceivedSagaCommand,
  outcome: { ok: true; result: null | string } | { ok: false; error: string },
  id = `reply-${command.messageId}`,
): DeliveredMessage {
  const m = sagaReplyMessage(command, outcome);
  return { ...m, id, time: new Date(), deliveryAttempt: 1 };
}

describe('reply protocol', () => {
  it('sagaReplyDestination: the reply destination when some saga has a remote step, else none', () => {
    const { engine } = orchestrator();
    expect(sagaReplyDestination(engine)).toBeUndefined();
    engine.register(
      defineSaga<unknown, InMemoryTx>('local-only')
        .step('a', { run: () => undefined, compensatable: false })
        .build(),
    );
    expect(sagaReplyDestination(engine)).toBeUndefined();
    engine.register(checkoutSaga([]));
    expect(sagaReplyDestination(engine)).toBe(REPLIES);
    const noReplyTo = new SagaEngine<InMemoryTx>({ store: new InMemorySagaStore() });
    engines.push(noReplyTo);
    expect(sagaReplyDestination(noReplyTo)).toBeUndefined();
    expect(sagaReplyInboxEndpoint(engine, REPLIES).consumer).toBe(DEFAULT_SAGA_REPLY_CONSUMER);
  });

  it('a reply is applied once in the inbox transaction and wakes the saga after the commit', async () => {
    const journal: string[] = [];
    const { engine, outbox, events, inbox, endpoint } = orchestrator();
    engine.register(checkoutSaga(journal));
    await engine.startBackground();
    const { sagaId } = await engine.start('checkout', { card: '4242' });
    await waitUntil(async () => (await engine.get(sagaId)).status === 'waiting', 'parked saga');
    const [command] = outbox.commands('card.charge');

    const reply = replyTo(command!, { ok: true, result: 'charged' });
    await deliverThroughInbox(endpoint, reply, { inbox });
    await deliverThroughInbox(endpoint, { ...reply, deliveryAttempt: 2 }, { inbox });
    const done = await engine.waitFor(sagaId, { timeoutMs: 5_000 });
    expect(done.status).toBe('completed');
    expect(done.steps.find((s) => s.name === 'charge')?.result).toBe('charged');
    expect(events.filter((e) => e.type === 'step.completed' && e.step === 'charge')).toHaveLength(
      1,
    );
    expect(inbox.stats).toMatchObject({ processed: 1, duplicates: 1 });
  });

  it('a reply whose commit fails changes nothing and wakes nothing; its redelivery does', async () => {
    const { engine, outbox, events, inbox, inboxStore, endpoint } = orchestrator();
    engine.register(checkoutSaga([]));
    await engine.startBackground();
    const { sagaId } = await engine.start('checkout', { card: '4242' });
    await waitUntil(async () => (await engine.get(sagaId)).status === 'waiting', 'parked saga');
    const reply = replyTo(outbox.commands()[0]!, { ok: false, error: 'card declined' });
    inboxStore.setFault((point) => (point === 'commit' ? new Error('commit lost') : undefined));
    await expect(deliverThroughInbox(endpoint, reply, { inbox })).rejects.toBeInstanceOf(
      InboxHandlerFailedError,
    );
    expect(events.some((e) => e.type === 'step.failed')).toBe(false);
    expect((await engine.get(sagaId)).steps.find((s) => s.name === 'charge')?.status).toBe(
      'waiting',
    );
    inboxStore.setFault(undefined);
    await deliverThroughInbox(endpoint, { ...reply, deliveryAttempt: 2 }, { inbox });
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'step.failed', step: 'charge', error: 'card declined' }),
    );
    const done = await engine.waitFor(sagaId, { timeoutMs: 5_000 });
    expect(done.status).toBe('compensated');
  });

  it('a late reply (the step no longer waits) is taken and changes nothing', async () => {
    const { engine, outbox, inbox, inboxStore, endpoint, events } = orchestrator();
    engine.register(checkoutSaga([]));
    await engine.startBackground();
    const { sagaId } = await engine.start('checkout', { card: '4242' });
    await waitUntil(async () => (await engine.get(sagaId)).status === 'waiting', 'parked saga');
    const command = outbox.commands()[0]!;
    await deliverThroughInbox(endpoint, replyTo(command, { ok: true, result: 'first' }), { inbox });
    await engine.waitFor(sagaId, { timeoutMs: 5_000 });
    const before = events.length;
    const late = replyTo(command, { ok: false, error: 'too late' }, 'another-id');
    await deliverThroughInbox(endpoint, late, { inbox });
    await expect(
      inboxStore.get({ consumer: DEFAULT_SAGA_REPLY_CONSUMER, messageId: 'another-id' }),
    ).resolves.toMatchObject({ status: 'processed' });
    expect(events.slice(before)).toEqual([]);
    expect((await engine.get(sagaId)).steps.find((s) => s.name === 'charge')?.result).toBe('first');
  });

  it('a message that is not a Sage reply is dead-lettered after its attempts, with its snapshot', async () => {
    const { inbox, inboxStore, endpoint, engine } = orchestrator();
    engine.register(checkoutSaga([]));
    const bad: DeliveredMessage = {
      id: 'not-a-reply',
      destination: REPLIES,
      key: null,
      type: SAGA_REPLY_TYPE,
      payload: null,
      headers: { [SAGA_HEADERS.sagaId]: 'x' },
      time: new Date(),
      deliveryAttempt: 1,
    };
    await expect(deliverThroughInbox(endpoint, bad, { inbox })).rejects.toBeInstanceOf(
      InboxHandlerFailedError,
    );
    await deliverThroughInbox(endpoint, { ...bad, deliveryAttempt: 2 }, { inbox });
    const dead = await inboxStore.get({ consumer: DEFAULT_SAGA_REPLY_CONSUMER, messageId: bad.id });
    expect(dead).toMatchObject({ status: 'dead_letter', attempts: 2, message: { id: bad.id } });
    expect(dead?.lastError).toContain('is not a valid saga command or reply');
  });

  it('orchestrator and participant through one broker: a saga completes, a rejected one compensates remotely', async () => {
    const broker = new InMemoryBroker();
    const journal: string[] = [];
    const orch = orchestrator(broker);
    orch.engine.register(checkoutSaga(journal));
    const orchestratorSide = new InboxSubscriptions<InMemoryTx>({ inbox: orch.inbox });
    subscriptions.push(orchestratorSide);
    await orchestratorSide.subscribe(broker, [
      sagaReplyInboxEndpoint(orch.engine, sagaReplyDestination(orch.engine)!),
    ]);

    const charged: string[] = [];
    const participantOutbox = new RelayedOutbox(broker);
    const participantInbox = new InboxProcessor<InMemoryTx>({ store: new InMemoryInboxStore() });
    const participantSide = new InboxSubscriptions<InMemoryTx>({ inbox: participantInbox });
    subscriptions.push(participantSide);
    await participantSide.subscribe(broker, [
      participantInboxEndpoint(
        {
          destination: 'cards',
          consumer: 'card-service',
          maxAttempts: undefined,
          handlers: new Map<string, SagaCommandHandlerEntry<InMemoryTx>>([
            [
              'card.charge',
              {
                name: 'Cards.charge',
                run: (cmd, { tx }) => {
                  const { card } = cmd.payload as { card: string };
                  if (card.endsWith('0002')) return Promise.resolve(rejectCommand('card declined'));
                  tx.onCommit(() => charged.push(card));
                  return Promise.resolve({ card });
                },
              },
            ],
            ['card.refund', { name: 'Cards.refund', run: () => Promise.resolve(null) }],
          ]),
        },
        new OutboxPublisher({ writer: participantOutbox }),
      ),
    ]);

    await orch.engine.startBackground();
    const ok = await orch.engine.start('checkout', { card: '4242' });
    const declined = await orch.engine.start('checkout', { card: '0002' });
    const [a, b] = await Promise.all([
      orch.engine.waitFor(ok.sagaId, { timeoutMs: 5_000 }),
      orch.engine.waitFor(declined.sagaId, { timeoutMs: 5_000 }),
    ]);
    expect(a.status).toBe('completed');
    expect(a.steps.find((s) => s.name === 'charge')?.result).toEqual({ card: '4242' });
    expect(b.status).toBe('compensated');
    expect(b.error).toContain('card declined');
    expect(charged).toEqual(['4242']);
    expect(journal.sort()).toEqual(['release', 'reserve', 'reserve']);
    expect(participantOutbox.rows.every((r) => r.destination === REPLIES)).toBe(true);
  });
});
