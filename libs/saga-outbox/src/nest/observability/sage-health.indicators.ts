import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { withTimeout } from './with-timeout';
import { findSageParts, type SageParts } from './sage-sources';
import { NestSageLogger } from '../nest-sage-logger';
import { HealthFailureReporter } from './health-failure';

export interface SageHealthModuleOptions {
  /** Bound on every check; a check that takes longer reports down (the broker: unreachable). Default 3000 ms. */
  timeoutMs?: number;
  /**
   * The relay is down when its loop has not completed a tick for this long. Default 60000 ms. Never
   * less than twice the broker's publish timeout: while the broker is down a tick waits that long
   * for its publishes to fail, and a relay doing so is alive (it must not be restarted for it).
   */
  relayStaleAfterMs?: number;
  /** Backlog thresholds, reported with the backlog's numbers. */
  backlog?: {
    /** Default 5000 (the alert's threshold). */
    maxPending?: number;
    /** Default 600 (10 minutes). */
    maxOldestAgeSeconds?: number;
    /**
     * Report the backlog check down (and so fail readiness) when a threshold is exceeded. Default
     * false: a backlog is reported as data only, because taking every instance out of load
     * balancing for it would turn a delay into an outage.
     */
    failReadiness?: boolean;
  };
  /** How an unreachable broker counts. */
  broker?: {
    /**
     * Report the broker check down (and so fail readiness) while the broker is unreachable.
     * Default false: the broker is reported with `reachable: false` and the cause, as data only.
     * The outbox exists to absorb a broker outage (messages wait in PostgreSQL and are published
     * once it returns), so taking every instance out of rotation for it would turn a delay into
     * an outage. Set it when an instance without its broker should receive no traffic.
     */
    failReadiness?: boolean;
  };
  /**
   * Put the raw error texts (a driver's or broker's message, the relay's last error) in health
   * bodies, as `error`, URL credentials still masked. Default false: a failed check says a generic
   * `message` (`database unreachable`) and the error's `code` (`28P01`, `ECONNREFUSED`), because
   * health endpoints are often reachable by more people than the logs; the raw text is logged (once
   * per change of state, event `health.check.down`). Turn it on where only operators reach them.
   */
  exposeErrors?: boolean;
}

export const SAGE_HEALTH_OPTIONS = Symbol('SAGE_HEALTH_OPTIONS');

/**
 * Sage's health indicators (terminus HealthIndicatorService API), each bounded by `timeoutMs`:
 * `sage_database` (a round trip), `sage_broker` (Broker.health(); an unreachable broker is data,
 * `reachable: false`, unless `broker.failReadiness`), `sage_relay` (the relay loop ticked
 * recently), `sage_outbox_backlog` (pending count and oldest age against thresholds). Parts this
 * application does not run (no broker, no relay) report up with `configured: false`. A failed check
 * says a generic `message` and the error's `code`; the raw error text is logged once per change of
 * state and shown in the body only with `exposeErrors` (never a URL's credentials).
 */
@Injectable()
export class SageHealthIndicators implements OnModuleInit {
  private parts: SageParts = {};
  private readonly startedAt = Date.now();
  private readonly timeoutMs: number;
  private readonly staleAfterMs: number;
  private readonly maxPending: number;
  private readonly maxOldestAgeSeconds: number;
  private readonly failOnBacklog: boolean;
  private readonly failOnBroker: boolean;
  private readonly failures: HealthFailureReporter;

  constructor(
    private readonly health: HealthIndicatorService,
    private readonly moduleRef: ModuleRef,
    @Inject(SAGE_HEALTH_OPTIONS) options: SageHealthModuleOptions,
  ) {
    this.timeoutMs = options.timeoutMs ?? 3000;
    this.staleAfterMs = options.relayStaleAfterMs ?? 60_000;
    this.maxPending = options.backlog?.maxPending ?? 5000;
    this.maxOldestAgeSeconds = options.backlog?.maxOldestAgeSeconds ?? 600;
    this.failOnBacklog = options.backlog?.failReadiness ?? false;
    this.failOnBroker = options.broker?.failReadiness ?? false;
    this.failures = new HealthFailureReporter(
      new NestSageLogger('SageHealth'),
      options.exposeErrors ?? false,
    );
  }

  onModuleInit(): void {
    this.parts = findSageParts(this.moduleRef);
  }

  async database(key = 'sage_database'): Promise<HealthIndicatorResult> {
    const check = this.health.check(key);
    const probe = this.parts.probe;
    if (!probe) return check.down({ message: 'Sage database not found in this application' });
    const started = Date.now();
    try {
      await withTimeout('database health check', this.timeoutMs, () => probe.ping());
      this.failures.up(key);
      return check.up({ latencyMs: Date.now() - started });
    } catch (error) {
      return check.down({ ...this.failures.down(key, 'database unreachable', error) });
    }
  }

  /**
   * Whether the broker answers: up with `reachable: true`; when it does not, up with
   * `reachable: false`, `message: 'broker unreachable'` and the code (the outbox absorbs the
   * outage), or down with `broker.failReadiness`.
   */
  async broker(key = 'sage_broker'): Promise<HealthIndicatorResult> {
    const check = this.health.check(key);
    const broker = this.parts.broker;
    if (!broker) return check.up({ configured: false });
    let reachable: boolean;
    let failure: unknown;
    try {
      const result = await withTimeout(`broker "${broker.name}" health check`, this.timeoutMs, () =>
        broker.health(),
      );
      reachable = result.up;
      failure = result.detail;
    } catch (error) {
      reachable = false;
      failure = error;
    }
    if (reachable) this.failures.up(key);
    const cause = reachable ? {} : this.failures.down(key, 'broker unreachable', failure);
    const data = { broker: broker.name, reachable, ...cause };
    return reachable || !this.failOnBroker ? check.up(data) : check.down(data);
  }

  /**
   * Liveness of the relay loop: a stuck or crashed loop stops ticking; a restart helps. Failing
   * publishes (broker down) do not stop it: such a tick ends once its publishes time out.
   */
  relay(key = 'sage_relay'): Promise<HealthIndicatorResult> {
    const check = this.health.check(key);
    const relay = this.parts.outbox?.relay ?? this.parts.outbox?.walRelay;
    if (!relay) return Promise.resolve(check.up({ configured: false }));
    const { loop } = relay.stats;
    // Before the first tick, count from startup: a relay gets one stale period to get going.
    const last = loop.lastTickAt ?? this.startedAt;
    const sinceLastTickMs = Date.now() - last;
    const staleAfterMs = Math.max(
      this.staleAfterMs,
      2 * (this.parts.broker?.publishTimeoutMs ?? 0),
    );
    const lastError = this.failures.exposed(loop.lastError ?? undefined);
    const data = {
      relayId: relay.relayId,
      ticks: loop.ticks,
      sinceLastTickMs,
      staleAfterMs,
      consecutiveErrors: loop.consecutiveErrors,
      ...(lastError ? { lastError } : {}),
    };
    if (sinceLastTickMs <= staleAfterMs) {
      this.failures.up(key);
      return Promise.resolve(check.up(data));
    }
    // The loop's errors are logged by the relay itself; this logs the change of state.
    const { message } = this.failures.down(key, 'relay loop stale', loop.lastError ?? undefined);
    return Promise.resolve(check.down({ ...data, message }));
  }

  async backlog(key = 'sage_outbox_backlog'): Promise<HealthIndicatorResult> {
    const check = this.health.check(key);
    const probe = this.parts.probe;
    if (!probe) return check.down({ message: 'Sage database not found in this application' });
    try {
      const b = await withTimeout('outbox backlog health check', this.timeoutMs, () =>
        probe.outboxBacklog(),
      );
      const exceeded =
        b.pending > this.maxPending || b.oldestPendingAgeSeconds > this.maxOldestAgeSeconds;
      const data = {
        pending: b.pending,
        oldestPendingAgeSeconds: Math.round(b.oldestPendingAgeSeconds),
        deadLetters: b.deadLetters,
        maxPending: this.maxPending,
        maxOldestAgeSeconds: this.maxOldestAgeSeconds,
        exceeded,
      };
      this.failures.up(key);
      return exceeded && this.failOnBacklog ? check.down(data) : check.up(data);
    } catch (error) {
      return check.down({ ...this.failures.down(key, 'database unreachable', error) });
    }
  }
}
