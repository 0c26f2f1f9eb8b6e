import {
  ConfigurableModuleBuilder,
  Inject,
  Injectable,
  Module,
  type OnModuleDestroy,
  type OnModuleInit,
} from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { register as globalRegistry, type Registry } from 'prom-client';
import { NestSageLogger } from '../nest-sage-logger';
import { SageMetrics } from './sage-metrics';
import { retentionRowsTotals } from './retention-rows';
import { findSageParts } from './sage-sources';

export interface SageMetricsModuleOptions {
  /**
   * Registry to register on. Default: prom-client's global registry, the one
   * `PrometheusModule.register()` (`@willsoto/nestjs-prometheus`) serves at `/metrics`.
   */
  registry?: Registry;
  /** Bound on each scrape-time database query (backlog, active sagas). Default 2000 ms. */
  probeTimeoutMs?: number;
}

export const {
  ConfigurableModuleClass: SageMetricsConfigurableModule,
  MODULE_OPTIONS_TOKEN: SAGE_METRICS_OPTIONS,
} = new ConfigurableModuleBuilder<SageMetricsModuleOptions>({ moduleName: 'SageMetrics' })
  .setClassMethodName('forRoot')
  // Global by default, like SagaOutboxModule; `isGlobal: false` keeps it local to its importers.
  .setExtras({ isGlobal: true }, (definition, extras) => ({
    ...definition,
    global: extras.isGlobal !== false,
  }))
  .build();

/**
 * Registers Sage's metrics and feeds them: subscribes to the saga engine's, the inbox's and the
 * outbox relay's typed events (whichever this application runs) and reads the gauges from the
 * database at scrape time.
 */
@Injectable()
export class SageMetricsService implements OnModuleInit, OnModuleDestroy {
  readonly metrics: SageMetrics;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(
    private readonly moduleRef: ModuleRef,
    @Inject(SAGE_METRICS_OPTIONS) options: SageMetricsModuleOptions,
  ) {
    this.metrics = new SageMetrics({
      registry: options.registry ?? globalRegistry,
      probeTimeoutMs: options.probeTimeoutMs,
      logger: new NestSageLogger('SageMetrics'),
    });
  }

  /** Subscribes before any loop starts (those start on application bootstrap), so no event is missed. */
  onModuleInit(): void {
    const parts = findSageParts(this.moduleRef);
    const { probe, engine, inbox, outbox, broker, inboxMaintenance, sagaRetention } = parts;
    if (engine) this.unsubscribe.push(engine.onEvent(this.metrics.onSagaEvent));
    const offDeadLetters = broker?.onDeadLetter?.(this.metrics.onBrokerDeadLetter);
    if (offDeadLetters) this.unsubscribe.push(offDeadLetters);
    if (inbox) this.unsubscribe.push(inbox.onEvent(this.metrics.onInboxEvent));
    if (outbox) this.unsubscribe.push(outbox.onEvent(this.metrics.onOutboxEvent));
    this.metrics.setSources({
      backlog: probe && (() => probe.outboxBacklog()),
      // Only where sagas run: a relay-only process reports no saga_active series.
      activeSagas: probe && engine ? () => probe.activeSagas() : undefined,
      pool: probe && (() => probe.poolStats()),
      walSlotLag: outbox?.walRelay
        ? async () => (await outbox.walRelay!.slotLag())?.lagBytes ?? null
        : undefined,
      relays: () => {
        const relay = outbox?.relay ?? outbox?.walRelay;
        return relay ? [relay.stats.loop] : [];
      },
      retention: () =>
        retentionRowsTotals({
          sagas: sagaRetention?.retention,
          outbox: outbox?.retention,
          inbox: inboxMaintenance?.retention,
        }),
    });
  }

  onModuleDestroy(): void {
    for (const off of this.unsubscribe.splice(0)) off();
    this.metrics.dispose();
  }
}

/**
 * Prometheus metrics for Sage. Import next to SagaOutboxModule (or OutboxRelayModule) and
 * `PrometheusModule.register()`, which serves `/metrics`:
 *
 * ```ts
 * imports: [SagaOutboxModule.forRoot({ ... }), PrometheusModule.register(), SageMetricsModule.forRoot({})]
 * ```
 * Metric names: SAGE_METRIC_DEFINITIONS (docs/observability.md).
 */
@Module({ providers: [SageMetricsService], exports: [SageMetricsService] })
export class SageMetricsModule extends SageMetricsConfigurableModule {}
