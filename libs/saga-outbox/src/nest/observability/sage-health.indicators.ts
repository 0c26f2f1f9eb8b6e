import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { withTimeout } from './with-timeout';
import { findSageParts, type SageParts } from './sage-sources';
import { errorText } from '../../core/error-text';
import { redactCredentials } from './redact-credentials';

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
}

export const SAGE_HEALTH_OPTIONS = Symbol('SAGE_HEALTH_OPTIONS');

/** An error's text for a health body: never a URL's credentials. */
const message = (error: unknown): string => redactCredentials(errorText(error));

/**
 * Sage's health indicators (terminus HealthIndicatorService API), each bounded by `timeoutMs`:
 * `sage_database` (a round trip), `sage_broker` (Broker.health(); an unreachable broker is data,
 * `reachable: false`, unless `broker.failReadiness`), `sage_relay` (the relay loop ticked
 * recently), `sage_outbox_backlog` (pending count and oldest age against thresholds). Parts this
 * application does not run (no broker, no relay) report up with `configured: false`. No text in
 * them carries a URL's credentials.
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
      return check.up({ latencyMs: Date.now() - started });
    } catch (error) {
      return check.down({ message: message(error) });
    }
  }

  /**
   * Whether the broker answers: up with `reachable: true`; when it does not, up with
   * `reachable: false` and the cause (the outbox absorbs the outage), or down with
   * `broker.failReadiness`.
   */
  async broker(key = 'sage_broker'): Promise<HealthIndicatorResult> {
    const check = this.health.check(key);
    const broker = this.parts.broker;
    if (!broker) return check.up({ configured: false });
    let reachable: boolean;
    let cause: Record<string, string> = {};
    try {
      const result = await withTimeout(`broker "${broker.name}" health check`, this.timeoutMs, () =>
        broker.health(),
      );
      reachable = result.up;
      if (result.detail) cause = { detail: redactCredentials(result.detail) };
    } catch (error) {
      reachable = false;
      cause = { message: message(error) };
    }
    const data = { broker: broker.name, reachable, ...cause };
    return reachable || !this.failOnBroker ? check.up(data) : check.down(data);
  }

  /**
   * Liveness of the relay loop: a stuck or crashed loop stops ticking; a restart helps. Failing
   * publishes (broker down) do not stop it: such a tick ends once its publishes time out.
   */
  relay(key = 'sage_relay'): Promise<HealthIndicatorResult> {
    const check = this.health.check(key);
    const relay = this.parts.outbox?.relay;
    if (!relay) return Promise.resolve(check.up({ configured: false }));
    const { loop } = relay.stats;
    // Before the first tick, count from startup: a relay gets one stale period to get going.
    const last = loop.lastTickAt ?? this.startedAt;
    const sinceLastTickMs = Date.now() - last;
    const staleAfterMs = Math.max(
      this.staleAfterMs,
      2 * (this.parts.broker?.publishTimeoutMs ?? 0),
    );
    const data = {
      relayId: relay.relayId,
      ticks: loop.ticks,
      sinceLastTickMs,
      staleAfterMs,
      consecutiveErrors: loop.consecutiveErrors,
      ...(loop.lastError ? { lastError: redactCredentials(loop.lastError) } : {}),
    };
    return Promise.resolve(sinceLastTickMs > staleAfterMs ? check.down(data) : check.up(data));
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
      return exceeded && this.failOnBacklog ? check.down(data) : check.up(data);
    } catch (error) {
      return check.down({ message: message(error) });
    }
  }
}
