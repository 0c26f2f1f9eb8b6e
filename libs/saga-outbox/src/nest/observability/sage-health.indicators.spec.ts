import 'reflect-metadata';
import { Test } from '@nestjs/testing';
import { TerminusModule } from '@nestjs/terminus';
import { InvalidOptionsError } from '../../core/errors';
import type { Broker, BrokerHealth } from '../../core/ports/broker';
import { OUTBOX_BROKER, OutboxRelayService } from '../outbox/outbox.providers';
import {
  SAGE_HEALTH_OPTIONS,
  SageHealthIndicators,
  type SageHealthModuleOptions,
} from './sage-health.indicators';
import { SageHealthModule } from './sage-health.module';

/** A broker whose health says what the test wants; nothing else of it is used by the indicators. */
function brokerAnswering(health: () => Promise<BrokerHealth>, publishTimeoutMs?: number): Broker {
  return {
    name: 'rabbitmq',
    publishTimeoutMs,
    health,
    publish: () => Promise.reject(new Error('not used')),
    subscribe: () => Promise.reject(new Error('not used')),
    close: () => Promise.resolve(),
  };
}

/** An outbox relay whose loop last completed a tick `agoMs` ago. */
function relayTickedAgo(agoMs: number) {
  return {
    relay: {
      relayId: 'relay-1',
      stats: {
        loop: {
          ticks: 4,
          errors: 0,
          consecutiveErrors: 0,
          lastTickAt: Date.now() - agoMs,
          lastError: 'broker "rabbitmq" publish failed: amqp://sage:s3cret@mq:5672 refused',
        },
      },
    },
  };
}

async function indicators(
  options: SageHealthModuleOptions,
  parts: { broker?: Broker; relayTickedAgoMs?: number },
): Promise<SageHealthIndicators> {
  const moduleRef = await Test.createTestingModule({
    imports: [TerminusModule],
    providers: [
      { provide: SAGE_HEALTH_OPTIONS, useValue: options },
      SageHealthIndicators,
      ...(parts.broker ? [{ provide: OUTBOX_BROKER, useValue: parts.broker }] : []),
      ...(parts.relayTickedAgoMs !== undefined
        ? [{ provide: OutboxRelayService, useValue: relayTickedAgo(parts.relayTickedAgoMs) }]
        : []),
    ],
  }).compile();
  await moduleRef.init();
  return moduleRef.get(SageHealthIndicators);
}

const unreachable = () =>
  Promise.resolve({ up: false, detail: 'connect ECONNREFUSED (amqp://sage:s3cret@mq:5672)' });

describe('SageHealthIndicators: the broker', () => {
  it('reports an unreachable broker as data (up, reachable: false, a generic reason) by default', async () => {
    const health = await indicators({}, { broker: brokerAnswering(unreachable) });
    expect(await health.broker()).toEqual({
      sage_broker: {
        status: 'up',
        broker: 'rabbitmq',
        reachable: false,
        message: 'broker unreachable',
      },
    });
  });

  it('shows the raw cause, credentials masked, with exposeErrors', async () => {
    const health = await indicators(
      { exposeErrors: true },
      { broker: brokerAnswering(unreachable) },
    );
    expect(await health.broker()).toEqual({
      sage_broker: {
        status: 'up',
        broker: 'rabbitmq',
        reachable: false,
        message: 'broker unreachable',
        error: 'connect ECONNREFUSED (amqp://***@mq:5672)',
      },
    });
  });

  it('reports it down with broker.failReadiness', async () => {
    const health = await indicators(
      { broker: { failReadiness: true } },
      { broker: brokerAnswering(unreachable) },
    );
    expect(await health.broker()).toMatchObject({
      sage_broker: { status: 'down', reachable: false },
    });
  });

  it('counts a health check that throws or outlives timeoutMs as unreachable, with the code and without the raw text', async () => {
    const throwing = await indicators(
      {},
      {
        broker: brokerAnswering(() =>
          Promise.reject(
            Object.assign(new Error('getaddrinfo ENOTFOUND amqps://app:pw@mq.internal'), {
              code: 'ENOTFOUND',
            }),
          ),
        ),
      },
    );
    expect(await throwing.broker()).toEqual({
      sage_broker: {
        status: 'up',
        broker: 'rabbitmq',
        reachable: false,
        message: 'broker unreachable',
        code: 'ENOTFOUND',
      },
    });
    const hanging = await indicators(
      { timeoutMs: 20, broker: { failReadiness: true } },
      { broker: brokerAnswering(() => new Promise(() => undefined)) },
    );
    expect(await hanging.broker()).toMatchObject({
      sage_broker: {
        status: 'down',
        reachable: false,
        message: 'broker unreachable',
        code: 'PROBE_TIMEOUT',
      },
    });
  });

  it('reports a reachable broker up with reachable: true whatever the switch', async () => {
    const health = await indicators(
      { broker: { failReadiness: true } },
      { broker: brokerAnswering(() => Promise.resolve({ up: true })) },
    );
    expect(await health.broker()).toEqual({
      sage_broker: { status: 'up', broker: 'rabbitmq', reachable: true },
    });
  });
});

describe('SageHealthIndicators: the relay', () => {
  it('gives a relay at least twice the broker publish timeout before calling it stale', async () => {
    // A tick waits up to publishTimeoutMs for publishes to fail while the broker is down.
    const broker = brokerAnswering(unreachable, 20_000);
    const waiting = await indicators(
      { relayStaleAfterMs: 10_000 },
      { broker, relayTickedAgoMs: 30_000 },
    );
    expect(await waiting.relay()).toMatchObject({
      sage_relay: { status: 'up', staleAfterMs: 40_000 },
    });
    const stuck = await indicators(
      { relayStaleAfterMs: 10_000 },
      { broker, relayTickedAgoMs: 50_000 },
    );
    const result = await stuck.relay();
    expect(result).toMatchObject({
      sage_relay: { status: 'down', staleAfterMs: 40_000, message: 'relay loop stale' },
    });
    // The loop's last error is the relay's log business; the body has it only with exposeErrors.
    expect(result['sage_relay']).not.toHaveProperty('lastError');
    const exposed = await indicators(
      { relayStaleAfterMs: 10_000, exposeErrors: true },
      { broker, relayTickedAgoMs: 50_000 },
    );
    const shown = await exposed.relay();
    expect(shown['sage_relay']?.['lastError']).toBe(
      'broker "rabbitmq" publish failed: amqp://***@mq:5672 refused',
    );
    expect(JSON.stringify([result, shown])).not.toContain('s3cret');
  });

  it('uses relayStaleAfterMs when it is the longer bound', async () => {
    const health = await indicators(
      { relayStaleAfterMs: 5_000 },
      { broker: brokerAnswering(unreachable, 1_000), relayTickedAgoMs: 6_000 },
    );
    expect(await health.relay()).toMatchObject({
      sage_relay: { status: 'down', staleAfterMs: 5_000 },
    });
  });
});

describe('SageHealthModule.forRoot options', () => {
  it('rejects a switch that is not a boolean, naming the option', () => {
    expect(() =>
      SageHealthModule.forRoot({ broker: { failReadiness: 'yes' as unknown as boolean } }),
    ).toThrow(
      new InvalidOptionsError(
        'SageHealthModule.broker.failReadiness',
        'must be true or false, got "yes"',
      ),
    );
    expect(() => SageHealthModule.forRoot({ exposeErrors: 1 as unknown as boolean })).toThrow(
      'Invalid Sage option "SageHealthModule.exposeErrors": must be true or false, got 1',
    );
    expect(() => SageHealthModule.forRoot({ timeoutMs: 0 })).toThrow(
      'Invalid Sage option "SageHealthModule.timeoutMs": must be a positive number, got 0',
    );
    expect(() => SageHealthModule.forRoot({ backlog: { maxPending: -1 } })).toThrow(
      'Invalid Sage option "SageHealthModule.backlog.maxPending": must be a number >= 0, got -1',
    );
    expect(SageHealthModule.forRoot({ broker: { failReadiness: true } }).module).toBe(
      SageHealthModule,
    );
  });
});
