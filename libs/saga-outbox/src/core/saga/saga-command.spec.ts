import { SagaCommandInvalidError, SagaOutboxError } from '../errors';
import {
  assertSagaCommand,
  parseSagaCommand,
  parseSagaReply,
  SAGA_HEADERS,
  SAGA_REPLY_TYPE,
  sagaReplyMessage,
  SagaMessageInvalidError,
} from './saga-command';

const commandHeaders = {
  [SAGA_HEADERS.sagaId]: 's-1',
  [SAGA_HEADERS.saga]: 'order',
  [SAGA_HEADERS.step]: 'pay',
  [SAGA_HEADERS.phase]: 'forward',
  [SAGA_HEADERS.attempt]: '2',
  [SAGA_HEADERS.idempotencyKey]: 's-1:pay',
  [SAGA_HEADERS.replyTo]: 'orders.replies',
};
const command = {
  id: 'm-1',
  type: 'payment.authorize',
  payload: { amount: 3 },
  headers: commandHeaders,
};

describe('saga command / reply wire format', () => {
  it('a command parses into what the participant needs; its reply parses back on the orchestrator', () => {
    const received = parseSagaCommand(command);
    expect(received).toEqual({
      messageId: 'm-1',
      type: 'payment.authorize',
      payload: { amount: 3 },
      sagaId: 's-1',
      saga: 'order',
      step: 'pay',
      phase: 'forward',
      attempt: 2,
      idempotencyKey: 's-1:pay',
      replyTo: 'orders.replies',
    });
    const ok = sagaReplyMessage(received, { ok: true, result: { auth: 'a-1' } });
    expect(ok).toMatchObject({ destination: 'orders.replies', type: SAGA_REPLY_TYPE, key: 's-1' });
    expect(parseSagaReply({ id: 'r-1', ...ok })).toEqual({
      sagaId: 's-1',
      step: 'pay',
      phase: 'forward',
      attempt: 2,
      idempotencyKey: 's-1:pay',
      outcome: { ok: true, result: { auth: 'a-1' } },
    });
    const rejected = sagaReplyMessage(received, { ok: false, error: 'card declined' });
    expect(parseSagaReply({ id: 'r-2', ...rejected }).outcome).toEqual({
      ok: false,
      error: 'card declined',
    });
  });

  it('rejects messages that are not Sage commands or replies, naming what is wrong', () => {
    const without = { ...commandHeaders } as Record<string, string>;
    delete without[SAGA_HEADERS.replyTo];
    expect(() => parseSagaCommand({ ...command, headers: without })).toThrow(
      SagaMessageInvalidError,
    );
    expect(() => parseSagaCommand({ ...command, headers: without })).toThrow(/sage-reply-to/);
    expect(() =>
      parseSagaCommand({ ...command, headers: { ...commandHeaders, [SAGA_HEADERS.phase]: 'x' } }),
    ).toThrow(/sage-phase/);
    const reply = sagaReplyMessage(parseSagaCommand(command), { ok: true, result: null });
    expect(() =>
      parseSagaReply({
        id: 'r',
        payload: reply.payload,
        headers: { ...reply.headers, [SAGA_HEADERS.outcome]: 'maybe' },
      }),
    ).toThrow(/sage-reply-outcome/);
    for (const attempt of ['0', '-1', '1.5', 'x', '01']) {
      expect(() =>
        parseSagaReply({
          id: 'r',
          payload: reply.payload,
          headers: { ...reply.headers, [SAGA_HEADERS.attempt]: attempt },
        }),
      ).toThrow(/sage-attempt/);
    }
  });

  it('a remote step must return a command with a destination and a type', () => {
    expect(assertSagaCommand({ destination: 'd', type: 't', payload: 1 }, 'step')).toEqual({
      destination: 'd',
      type: 't',
      payload: 1,
      key: undefined,
      headers: undefined,
    });
    for (const bad of [null, 'x', [], { type: 't' }, { destination: ' ', type: 't' }]) {
      expect(() => assertSagaCommand(bad, 'step')).toThrow(SagaOutboxError);
    }
    expect(() => assertSagaCommand({ destination: 'd', type: 't', payload: 1n }, 'step')).toThrow(
      /not JSON-serialisable/,
    );
  });

  it.each([
    ['destination', 'NUL', { destination: 'pay\u0000ments', type: 't' }, /NUL character/],
    ['destination', 'a lone surrogate', { destination: 'payments\ud800', type: 't' }, /unpaired/],
    ['type', 'NUL', { destination: 'd', type: '\u0000' }, /NUL character/],
    ['type', 'a lone surrogate', { destination: 'd', type: '\udc00auth' }, /unpaired/],
  ])('a command whose %s holds %s: SagaCommandInvalidError', (field, _w, command, problem) => {
    let caught: unknown;
    try {
      assertSagaCommand({ ...command, payload: null }, 'saga "s" step "pay"');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SagaCommandInvalidError);
    expect((caught as Error).message).toMatch(problem);
    expect((caught as Error).message).toContain(`command whose ${field}`);
  });
});
