import { BrokerUnavailableError } from '../outbox/outbox-errors';
import type { Broker, BrokerHealth } from '../ports/broker';
import type { SageLogger } from '../ports/logger';
import { BrokerStartup, type BrokerStartupOptions } from './broker-startup';

/** A broker whose reachability the test sets; only what BrokerStartup uses. */
function fakeBroker(): Broker & { up: boolean; probes: number } {
  const broker = {
    name: 'fake',
    up: false,
    probes: 0,
    probe: (): Promise<BrokerHealth> => {
      broker.probes++;
      return Promise.resolve(
        broker.up
          ? { up: true }
          : { up: false, detail: 'cannot connect to fake at h:1: ECONNREFUSED' },
      );
    },
    health: () => broker.probe(),
    publish: () => Promise.resolve([]),
    subscribe: () => Promise.resolve({ unsubscribe: () => Promise.resolve() }),
    close: () => Promise.resolve(),
  };
  return broker;
}

function recordingLogger() {
  const lines: { level: string; message: string }[] = [];
  const at =
    (level: string) =>
    (message: string): void => {
      lines.push({ level, message });
    };
  const logger: SageLogger = {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  };
  return { logger, lines, warns: () => lines.filter((l) => l.level === 'warn') };
}

const until = async (condition: () => boolean, timeoutMs = 3000): Promise<void> => {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

function startup(broker: Broker, options: Partial<BrokerStartupOptions>) {
  const log = recordingLogger();
  return {
    log,
    startup: new BrokerStartup({
      broker,
      mode: 'degraded',
      retries: 3,
      delayMs: 10,
      logger: log.logger,
      ...options,
    }),
  };
}

describe('BrokerStartup', () => {
  it('degraded, broker down: one WARN naming the broker, the cause and the option; check() resolves', async () => {
    const broker = fakeBroker();
    const { startup: s, log } = startup(broker, {});
    await expect(s.check()).resolves.toMatchObject({ up: false });
    await s.check(); // memoised: no second probe, no second WARN
    expect(broker.probes).toBe(1);
    expect(log.warns()).toHaveLength(1);
    expect(log.warns()[0]!.message).toBe(
      `Broker "fake" is unreachable at startup: cannot connect to fake at h:1: ECONNREFUSED. Starting without it (brokerStartup: 'degraded'): the outbox keeps every message until the broker is back, and the relay and the subscriptions retry meanwhile; set brokerStartup: 'wait' to fail startup instead.`,
    );
  });

  it('degraded, broker down: subscriptions are set up in the background once it is back, without more WARNs', async () => {
    const broker = fakeBroker();
    const { startup: s, log } = startup(broker, { delayMs: 5, maxDelayMs: 20 });
    let attempts = 0;
    const started = await s.start('handlers', () => {
      attempts++;
      return broker.up
        ? Promise.resolve()
        : Promise.reject(new BrokerUnavailableError('fake', 'connect ECONNREFUSED'));
    });
    expect(started.subscribed).toBe(false);
    await until(() => attempts >= 3);
    expect(started.subscribed).toBe(false);
    broker.up = true;
    await until(() => started.subscribed);
    expect(log.warns()).toHaveLength(1); // the startup WARN; the retries log at debug meanwhile
    expect(
      log.lines.some((l) => l.level === 'info' && /handlers: subscribed/.test(l.message)),
    ).toBe(true);
    await started.stop();
  });

  it('degraded: a background retry that keeps failing WARNs again after warnIntervalMs, with the cause', async () => {
    const broker = fakeBroker();
    const { startup: s, log } = startup(broker, { delayMs: 5, maxDelayMs: 5, warnIntervalMs: 30 });
    const started = await s.start('handlers', () =>
      Promise.reject(new BrokerUnavailableError('fake', 'still refused')),
    );
    await until(() => log.warns().length >= 2);
    expect(log.warns()[1]!.message).toMatch(
      /^handlers: still cannot subscribe to broker "fake" after \d+ attempt\(s\): Broker "fake" is unavailable: still refused/,
    );
    await started.stop();
    const count = log.lines.length;
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(log.lines.length).toBe(count); // stopped: no more attempts
  });

  it('degraded, broker up but the subscription is refused for another reason: fails startup', async () => {
    const broker = fakeBroker();
    broker.up = true;
    const { startup: s } = startup(broker, {});
    await expect(
      s.start('handlers', () => Promise.reject(new Error('queue exists with other arguments'))),
    ).rejects.toThrow('queue exists with other arguments');
  });

  it('degraded, broker up but unreachable by the time it subscribes: retried in the background', async () => {
    const broker = fakeBroker();
    broker.up = true;
    const { startup: s, log } = startup(broker, { delayMs: 5 });
    let fail = true;
    const started = await s.start('handlers', () =>
      fail ? Promise.reject(new BrokerUnavailableError('fake', 'gone')) : Promise.resolve(),
    );
    expect(log.warns()[0]!.message).toMatch(
      /handlers: cannot subscribe yet: .*gone; retrying in the background/,
    );
    fail = false;
    await until(() => started.subscribed);
  });

  it('wait: probes retries + 1 times, a WARN each, then BrokerUnavailableError with the cause', async () => {
    const broker = fakeBroker();
    const { startup: s, log } = startup(broker, { mode: 'wait', retries: 2, delayMs: 5 });
    const error = await s.check().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BrokerUnavailableError);
    expect((error as Error).message).toBe(
      `Broker "fake" is unavailable: not reachable at startup after 3 attempt(s), 5 ms apart: cannot connect to fake at h:1: ECONNREFUSED. Start the broker or fix the \`broker\` option (retryAttempts / retryDelay set how long startup waits); brokerStartup: 'degraded' starts the app without it, the outbox keeping messages until it is back.`,
    );
    expect(broker.probes).toBe(3);
    expect(log.warns().map((w) => w.message)).toEqual([
      `Broker "fake" is unreachable: cannot connect to fake at h:1: ECONNREFUSED; attempt 1/3, retrying in 5 ms (brokerStartup: 'wait')`,
      `Broker "fake" is unreachable: cannot connect to fake at h:1: ECONNREFUSED; attempt 2/3, retrying in 5 ms (brokerStartup: 'wait')`,
    ]);
  });

  it('wait: a broker that comes up during the retries lets startup go on, and subscriptions start at once', async () => {
    const broker = fakeBroker();
    const { startup: s } = startup(broker, { mode: 'wait', retries: 5, delayMs: 5 });
    const checked = s.check();
    await until(() => broker.probes >= 2);
    broker.up = true;
    await expect(checked).resolves.toMatchObject({ up: true });
    const subscribe = jest.fn(() => Promise.resolve());
    await expect(s.start('handlers', subscribe)).resolves.toMatchObject({ subscribed: true });
    expect(subscribe).toHaveBeenCalledTimes(1);
  });

  it('uses health() when the adapter has no probe(), and a probe that throws counts as down', async () => {
    const broker = fakeBroker();
    const noProbe: Broker = {
      ...broker,
      probe: undefined,
      health: () => Promise.reject(new Error('boom')),
    };
    const { startup: s, log } = startup(noProbe, {});
    await expect(s.check()).resolves.toEqual({ up: false, detail: 'boom' });
    expect(log.warns()[0]!.message).toMatch(/^Broker "fake" is unreachable at startup: boom\./);
  });
});
