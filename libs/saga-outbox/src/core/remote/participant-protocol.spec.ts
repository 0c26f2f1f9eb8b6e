import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { waitUntil } from '../../testing/async';
import { InMemoryInboxStore } from '../../testing/in-memory-inbox-store';
import { InMemoryTx } from '../../testing/in-memory-saga-store';
import { InboxHandlerFailedError } from '../inbox/inbox-errors';
import { InboxProcessor, type InboxHandlerContext } from '../inbox/inbox-processor';
import { deliverThroughInbox, InboxSubscriptions } from '../inbox/inbox-subscription';
import type { NewOutboxMessage } from '../outbox/outbox-message';
import { OutboxPublisher } from '../outbox/outbox-publisher';
import type { DeliveredMessage } from '../ports/broker';
import type { OutboxWriter } from '../ports/outbox-store';
import {
  parseSagaReply,
  SAGA_HEADERS,
  SAGA_REPLY_TYPE,
  type ReceivedSagaCommand,
} from '../saga/saga-command';
import {
  commandOutcome,
  participantInboxEndpoint,
  rejectCommand,
  type ParticipantEndpoint,
  type ReplyToAllowList,
  type SagaCommandAnswer,
  type SagaCommandHandlerEntry,
} from './participant-protocol';

/** The participant's outbox: rows exist once the inbox transaction they were written in commits. */
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

let seq = 0;
function command(type: string, headers: Record<string, string> = {}): DeliveredMessage {
  seq++;
  return {
    id: `cmd-${seq}`,
    destination: 'cards',
    key: 'saga-1',
    type,
    payload: { amount: 42 },
    headers: {
      [SAGA_HEADERS.sagaId]: 'saga-1',
      [SAGA_HEADERS.saga]: 'checkout',
      [SAGA_HEADERS.step]: 'charge',
      [SAGA_HEADERS.phase]: 'forward',
      [SAGA_HEADERS.attempt]: '2',
      [SAGA_HEADERS.idempotencyKey]: 'saga-1:charge',
      [SAGA_HEADERS.replyTo]: 'checkout.replies',
      ...headers,
    },
    time: new Date(),
    deliveryAttempt: 1,
  };
}

function setup(
  handlers: Record<
    string,
    (command: ReceivedSagaCommand, context: InboxHandlerContext<InMemoryTx>) => SagaCommandAnswer
  >,
  replyTo?: ReplyToAllowList,
) {
  const store = new InMemoryInboxStore();
  const inbox = new InboxProcessor<InMemoryTx>({ store, maxAttempts: 2 });
  const outbox = new CommittedOutbox();
  const effects: string[] = [];
  const seen: { command: ReceivedSagaCommand; context: InboxHandlerContext<InMemoryTx> }[] = [];
  const endpoint: ParticipantEndpoint<InMemoryTx> = {
    destination: 'cards',
    consumer: 'card-service',
    maxAttempts: undefined,
    handlers: new Map<string, SagaCommandHandlerEntry<InMemoryTx>>(
      Object.entries(handlers).map(([type, handle]) => [
        type,
        {
          name: `Cards.${type}`,
          replyTo,
          run: (cmd, context) => {
            seen.push({ command: cmd, context });
            // The handler's own write: commits with the inbox row and the reply, or not at all.
            context.tx.onCommit(() => effects.push(`${type}:${cmd.idempotencyKey}`));
            return Promise.resolve().then(() => handle(cmd, context));
          },
        },
      ]),
    ),
  };
  const ep = participantInboxEndpoint(endpoint, new OutboxPublisher({ writer: outbox }));
  const deliver = (m: DeliveredMessage) => deliverThroughInbox(ep, m, { inbox });
  const replies = () => outbox.rows.map((r) => ({ row: r, reply: parseSagaReply(r) }));
  return { store, inbox, outbox, effects, seen, endpoint: ep, deliver, replies };
}

describe('participant protocol', () => {
  it('runs the handler of the command type in the inbox transaction and writes its result as the reply', async () => {
    const { deliver, replies, effects, seen, outbox } = setup({
      'card.charge': (cmd) => ({ charged: (cmd.payload as { amount: number }).amount }),
    });
    const m = command('card.charge');
    await deliver(m);
    expect(effects).toEqual(['card.charge:saga-1:charge']);
    expect(seen[0]?.command).toMatchObject({
      messageId: m.id,
      type: 'card.charge',
      sagaId: 'saga-1',
      step: 'charge',
      phase: 'forward',
      attempt: 2,
      idempotencyKey: 'saga-1:charge',
      replyTo: 'checkout.replies',
    });
    expect(seen[0]?.context).toMatchObject({
      consumer: 'card-service',
      messageId: m.id,
      attempt: 1,
    });
    expect(outbox.rows).toHaveLength(1);
    expect(outbox.rows[0]).toMatchObject({
      destination: 'checkout.replies',
      type: SAGA_REPLY_TYPE,
      key: 'saga-1',
    });
    expect(replies()[0]?.reply).toEqual({
      sagaId: 'saga-1',
      step: 'charge',
      phase: 'forward',
      // Echoed, so the orchestrator can check the reply answers the command it sent.
      attempt: 2,
      idempotencyKey: 'saga-1:charge',
      outcome: { ok: true, result: { charged: 42 } },
    });
  });

  it('a rejection becomes a failure reply; what the handler wrote still commits', async () => {
    const { deliver, replies, effects, inbox } = setup({
      'card.charge': () => rejectCommand('card declined'),
    });
    await deliver(command('card.charge'));
    expect(effects).toEqual(['card.charge:saga-1:charge']);
    expect(replies().map((r) => r.reply.outcome)).toEqual([{ ok: false, error: 'card declined' }]);
    expect(inbox.stats.processed).toBe(1);
  });

  it('a command type no handler declares is answered with a failure, not left to time out', async () => {
    const { deliver, replies, store } = setup({ 'card.charge': () => null });
    const m = command('card.refund', { [SAGA_HEADERS.phase]: 'compensate' });
    await deliver(m);
    expect(replies().map((r) => r.reply)).toEqual([
      {
        sagaId: 'saga-1',
        step: 'charge',
        phase: 'compensate',
        attempt: 2,
        idempotencyKey: 'saga-1:charge',
        outcome: { ok: false, error: 'no handler for command type "card.refund" on "cards"' },
      },
    ]);
    await expect(store.get({ consumer: 'card-service', messageId: m.id })).resolves.toMatchObject({
      status: 'processed',
    });
  });

  it('a handler that throws leaves nothing (no effect, no reply) and is tried again on redelivery', async () => {
    let calls = 0;
    const { deliver, replies, effects } = setup({
      'card.charge': () => {
        if (++calls === 1) throw new Error('bank unreachable');
        return { charged: true };
      },
    });
    const m = command('card.charge');
    await expect(deliver(m)).rejects.toBeInstanceOf(InboxHandlerFailedError);
    expect(effects).toEqual([]);
    expect(replies()).toEqual([]);
    await deliver({ ...m, deliveryAttempt: 2 });
    expect(effects).toEqual(['card.charge:saga-1:charge']);
    expect(replies().map((r) => r.reply.outcome)).toEqual([
      { ok: true, result: { charged: true } },
    ]);
  });

  it('a redelivered command is answered once', async () => {
    const { deliver, replies, effects } = setup({ 'card.charge': () => undefined });
    const m = command('card.charge');
    await deliver(m);
    await deliver({ ...m, deliveryAttempt: 2 });
    expect(effects).toHaveLength(1);
    expect(replies().map((r) => r.reply.outcome)).toEqual([{ ok: true, result: null }]);
  });

  it('a message that is not a Sage command is dead-lettered after its attempts, with the message, unanswered', async () => {
    const { deliver, replies, seen, store } = setup({ 'card.charge': () => null });
    const m = command('card.charge', { [SAGA_HEADERS.replyTo]: '' });
    await expect(deliver(m)).rejects.toBeInstanceOf(InboxHandlerFailedError);
    await deliver({ ...m, deliveryAttempt: 2 });
    const dead = await store.get({ consumer: 'card-service', messageId: m.id });
    expect(dead).toMatchObject({ status: 'dead_letter', attempts: 2 });
    expect(dead?.lastError).toContain(`header "${SAGA_HEADERS.replyTo}" is missing`);
    expect(dead?.message).toMatchObject({ id: m.id, type: 'card.charge' });
    expect(seen).toEqual([]);
    expect(replies()).toEqual([]);
  });

  it('answers commands delivered by a broker subscription', async () => {
    const broker = new InMemoryBroker();
    const { endpoint, inbox, replies } = setup({ 'card.charge': () => 'ok' });
    const subscriptions = new InboxSubscriptions<InMemoryTx>({ inbox });
    await subscriptions.subscribe(broker, [endpoint]);
    const { deliveryAttempt: _, ...m } = command('card.charge');
    await broker.publish([m]);
    await waitUntil(() => replies().length === 1, 'the reply');
    expect(replies()[0]?.reply.outcome).toEqual({ ok: true, result: 'ok' });
    await subscriptions.unsubscribeAll();
  });

  it('commandOutcome: a result (nothing is null), or the rejection’s reason', () => {
    expect(commandOutcome(undefined)).toEqual({ ok: true, result: null });
    expect(commandOutcome(0)).toEqual({ ok: true, result: 0 });
    expect(commandOutcome(rejectCommand('no'))).toEqual({ ok: false, error: 'no' });
  });

  describe('reply destinations allow-list (replyTo)', () => {
    it.each([
      ['a list', ['checkout.replies']],
      ['a predicate', (d: string) => d.startsWith('checkout.')],
    ])('with %s, an allowed reply destination is answered', async (_, list) => {
      const { deliver, replies, effects } = setup({ 'card.charge': () => null }, list);
      await deliver(command('card.charge'));
      expect(effects).toEqual(['card.charge:saga-1:charge']);
      expect(replies().map((r) => r.row.destination)).toEqual(['checkout.replies']);
    });

    it.each([
      ['a list', ['checkout.replies']],
      ['a predicate', (d: string) => d.startsWith('checkout.')],
    ])(
      'with %s, a command asking for a reply elsewhere is dead-lettered at once: not handled, no reply',
      async (_, list) => {
        const { deliver, replies, effects, seen, store, inbox } = setup(
          { 'card.charge': () => ({ charged: true }) },
          list,
        );
        const m = command('card.charge', { [SAGA_HEADERS.replyTo]: 'attacker.replies' });
        await deliver(m);
        expect(seen).toEqual([]);
        expect(effects).toEqual([]);
        expect(replies()).toEqual([]);
        const row = await store.get({ consumer: 'card-service', messageId: m.id });
        expect(row).toMatchObject({ status: 'dead_letter', attempts: 1 });
        expect(row?.lastError).toMatch(/^reply-to-not-allowed: .*"attacker\.replies"/);
        expect(inbox.stats.deadLettered).toBe(1);
      },
    );

    it('a command of a type no handler declares gets no failure reply on a destination no handler allows', async () => {
      const { deliver, replies, store } = setup({ 'card.charge': () => null }, [
        'checkout.replies',
      ]);
      const m = command('card.refund', { [SAGA_HEADERS.replyTo]: 'attacker.replies' });
      await deliver(m);
      expect(replies()).toEqual([]);
      await expect(store.get({ consumer: 'card-service', messageId: m.id })).resolves.toMatchObject(
        { status: 'dead_letter' },
      );
    });
  });
});
