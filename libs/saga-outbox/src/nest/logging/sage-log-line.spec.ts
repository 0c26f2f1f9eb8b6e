import { ConsoleLogger, Logger } from '@nestjs/common';
import { inspect, stripVTControlCharacters } from 'node:util';
import { NestSageLogger } from '../nest-sage-logger';
import { SageLogLine, sageLogText } from './sage-log-line';
import { SagaFailureLog } from './saga-failure-log';

/** What ConsoleLogger writes, chunk by chunk, to stdout and stderr while `work` runs. */
function captureConsole(work: () => void): { stream: 'stdout' | 'stderr'; text: string }[] {
  const written: { stream: 'stdout' | 'stderr'; text: string }[] = [];
  const spies = (['stdout', 'stderr'] as const).map((stream) =>
    jest.spyOn(process[stream], 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push({ stream, text: String(chunk) });
      return true;
    }),
  );
  try {
    work();
  } finally {
    for (const spy of spies) spy.mockRestore();
  }
  return written;
}

describe('sageLogText', () => {
  it('writes the message, then key=value pairs, on one line, with event last', () => {
    expect(
      sageLogText('outbox message publish failed; will retry', {
        event: 'outbox.message.retry',
        messageId: '0193-a',
        destination: 'orders',
        attempt: 2,
        retryInMs: null,
        key: undefined,
        error: 'connect ECONNREFUSED 127.0.0.1:5672\n    at TCPConnectWrap',
      }),
    ).toBe(
      'outbox message publish failed; will retry messageId=0193-a destination=orders attempt=2 ' +
        'retryInMs=null error="connect ECONNREFUSED 127.0.0.1:5672\\n    at TCPConnectWrap" ' +
        'event=outbox.message.retry',
    );
  });

  it('does not repeat an error, reason or saga name the message already quotes', () => {
    expect(
      sageLogText('saga order 0193 compensated after step "charge" failed: card declined', {
        sagaId: '0193',
        saga: 'order',
        step: 'charge',
        reason: 'step "charge" failed: card declined',
        error: 'another text',
        event: 'saga.compensated',
      }),
    ).toBe(
      'saga order 0193 compensated after step "charge" failed: card declined sagaId=0193 step=charge error="another text" event=saga.compensated',
    );
  });

  it('keeps a message with line breaks on one line, and objects as compact JSON', () => {
    expect(sageLogText('first\nsecond\r\nthird', { pivots: ['a', 'b'], s: { n: 1 } })).toBe(
      'first\\nsecond\\nthird pivots=["a","b"] s={"n":1}',
    );
  });
});

describe('SageLogLine', () => {
  it('is a structured object for loggers that serialise (msg and fields, nothing else)', () => {
    const line = new SageLogLine('warn', 'saga x 1 compensated', {
      sagaId: '1',
      skipped: undefined,
      __proto__: 'a field, not a prototype',
    });
    expect(JSON.parse(JSON.stringify(line))).toEqual({
      msg: 'saga x 1 compensated',
      sagaId: '1',
      __proto__: 'a field, not a prototype',
    });
    expect({ ...line }).toEqual(JSON.parse(JSON.stringify(line)) as unknown);
    expect(line).toBeInstanceOf(SageLogLine);
  });

  it('is one line of text for loggers that inspect, coloured by level when asked', () => {
    const line = new SageLogLine('error', 'saga x 1 failed: boom', { sagaId: '1' });
    expect(inspect(line)).toBe('saga x 1 failed: boom sagaId=1');
    expect(inspect(line, { colors: true })).toBe('\x1B[31msaga x 1 failed: boom sagaId=1\x1B[39m');
    expect(String(line)).toBe('saga x 1 failed: boom sagaId=1');
  });
});

describe('NestSageLogger under Nest loggers', () => {
  afterEach(() => {
    Logger.overrideLogger(new ConsoleLogger());
  });

  it('writes one line per call under the default ConsoleLogger (text mode), errors to stderr', () => {
    Logger.overrideLogger(new ConsoleLogger());
    const logger = new NestSageLogger('Sage');
    const written = captureConsole(() => {
      logger.warn('outbox message publish failed; will retry', {
        messageId: 'm-1',
        error: 'line one\nline two',
        event: 'outbox.message.retry',
      });
      logger.error('inbox: message dead-lettered after its last allowed attempt failed', {
        consumer: 'billing',
        messageId: 'm-2',
        attempts: 5,
        event: 'inbox.dead_lettered',
      });
      logger.info('a plain message\nwith a break');
    });
    expect(written.map((w) => w.stream)).toEqual(['stdout', 'stderr', 'stdout']);
    for (const { text } of written) {
      expect(text.endsWith('\n')).toBe(true);
      expect(text.slice(0, -1)).not.toContain('\n');
    }
    const [warn, error, info] = written.map((w) => stripVTControlCharacters(w.text));
    expect(warn).toMatch(
      / WARN \[Sage\] outbox message publish failed; will retry messageId=m-1 error="line one\\nline two" event=outbox\.message\.retry/,
    );
    expect(error).toMatch(
      / ERROR \[Sage\] inbox: message dead-lettered after its last allowed attempt failed consumer=billing messageId=m-2 attempts=5 event=inbox\.dead_lettered/,
    );
    expect(info).toMatch(/ LOG \[Sage\] a plain message\\nwith a break/);
  });

  it('stays structured under ConsoleLogger json mode', () => {
    Logger.overrideLogger(new ConsoleLogger({ json: true }));
    const written = captureConsole(() =>
      new NestSageLogger('Sage').warn('saga x 1: step "a" compensated', {
        sagaId: '1',
        step: 'a',
        event: 'compensation.completed',
      }),
    );
    expect(written).toHaveLength(1);
    expect(JSON.parse(written[0]!.text)).toMatchObject({
      level: 'warn',
      context: 'Sage',
      message: {
        msg: 'saga x 1: step "a" compensated',
        sagaId: '1',
        step: 'a',
        event: 'compensation.completed',
      },
    });
  });
});

describe('SagaFailureLog', () => {
  it('logs retries and compensated steps at warn, final failures at error, with ids and the error, never more', () => {
    const lines: { level: string; message: string; fields?: Record<string, unknown> }[] = [];
    const at = (level: string) => (message: string, fields?: Record<string, unknown>) =>
      lines.push({ level, message, fields });
    const log = new SagaFailureLog({
      debug: at('debug'),
      info: at('info'),
      warn: at('warn'),
      error: at('error'),
    });
    const ids = { sagaId: '0193', saga: 'order', at: 0 };
    log.onSagaEvent({ type: 'saga.started', ...ids });
    log.onSagaEvent({ type: 'step.started', ...ids, step: 'charge', attempt: 1 });
    log.onSagaEvent({
      type: 'step.retrying',
      ...ids,
      step: 'charge',
      attempt: 1,
      delayMs: 200,
      error: 'timeout',
    });
    log.onSagaEvent({ type: 'step.failed', ...ids, step: 'charge', attempt: 3, error: 'declined' });
    log.onSagaEvent({ type: 'saga.compensating', ...ids, reason: 'step "charge" failed' });
    log.onSagaEvent({
      type: 'compensation.retrying',
      ...ids,
      step: 'reserve',
      attempt: 1,
      delayMs: 50,
      error: 'stock down',
    });
    log.onSagaEvent({ type: 'compensation.completed', ...ids, step: 'reserve', attempt: 2 });
    log.onSagaEvent({
      type: 'compensation.failed',
      ...ids,
      step: 'ship',
      attempt: 5,
      error: 'refused',
    });
    log.onSagaEvent({ type: 'saga.compensated', ...ids, durationMs: 9 });
    expect(lines.map((l) => [l.level, l.message])).toEqual([
      ['warn', 'saga order 0193: step "charge" attempt 1 failed, retrying in 200 ms: timeout'],
      [
        'error',
        'saga order 0193: step "charge" failed for good (attempt 3, no retry left): declined',
      ],
      [
        'warn',
        'saga order 0193: compensation of step "reserve" attempt 1 failed, retrying in 50 ms: stock down',
      ],
      ['warn', 'saga order 0193: step "reserve" compensated'],
      [
        'error',
        'saga order 0193: compensation of step "ship" failed for good (attempt 5): refused',
      ],
    ]);
    expect(lines[0]!.fields).toEqual({
      sagaId: '0193',
      saga: 'order',
      step: 'charge',
      attempt: 1,
      retryInMs: 200,
      error: 'timeout',
      event: 'step.retrying',
    });
  });
});
