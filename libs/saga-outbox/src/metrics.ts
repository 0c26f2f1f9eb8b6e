/**
 * `@sage/saga-outbox/metrics`: Prometheus metrics for sagas, the outbox, the relay and the inbox.
 * Needs `prom-client` and `@willsoto/nestjs-prometheus`.
 *
 * @packageDocumentation
 */
export {
  SageMetricsModule,
  SageMetricsService,
  SAGE_METRICS_OPTIONS,
} from './nest/observability/sage-metrics.module';
export type { SageMetricsModuleOptions } from './nest/observability/sage-metrics.module';
export {
  SageMetrics,
  SAGE_METRIC_DEFINITIONS,
  exposedMetricNames,
} from './nest/observability/sage-metrics';
export type {
  SageMetricDefinition,
  SageMetricName,
  SageMetricsOptions,
  SageMetricsSources,
  MetricKind,
  RetentionRowsTotal,
} from './nest/observability/sage-metrics';
export type { OutboxBacklog, PoolStats } from './persistence/postgres/postgres-observability-probe';
