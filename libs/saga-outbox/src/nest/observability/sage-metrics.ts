import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { InboxEvent } from '../../core/inbox/inbox-events';
import type { DeadLetteredMessage } from '../../core/ports/broker';
import type { LoopStats } from '../../core/loop';
import type { OutboxEvent } from '../../core/outbox/outbox-events';
import type { SagaEvent } from '../../core/saga/saga-events';
import { silentLogger, type SageLogger } from '../../core/ports/logger';
import type {
  OutboxBacklog,
  PoolStats,
} from '../../persistence/postgres/postgres-observability-probe';
import { withTimeout } from './with-timeout';
import { errorText } from '../../core/error-text';

export type MetricKind = 'counter' | 'gauge' | 'histogram';

export interface SageMetricDefinition {
  readonly kind: MetricKind;
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly buckets?: readonly number[];
}

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const LAG_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const SAGA_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800];

/**
 * Every metric Sage registers: the single source of truth for the exporter, the docs and the test
 * that checks ops/prometheus and ops/grafana name only these. Labels are low-cardinality by
 * construction (saga, step, consumer, destination, type, path, reason: all bounded by code or
 * configuration, never ids).
 */
export const SAGE_METRIC_DEFINITIONS = [
  // outbox, from the database at scrape time
  {
    kind: 'gauge',
    name: 'outbox_pending_messages',
    help: 'Unsent outbox messages (pending or claimed), from the database at scrape time.',
    labelNames: [],
  },
  {
    kind: 'gauge',
    name: 'outbox_oldest_pending_age_seconds',
    help: 'Age of the oldest pending outbox message (database clock), 0 when none.',
    labelNames: [],
  },
  {
    kind: 'gauge',
    name: 'outbox_dead_letter_messages',
    help: 'Outbox messages in dead_letter, from the database at scrape time.',
    labelNames: [],
  },
  {
    kind: 'gauge',
    name: 'outbox_wal_slot_lag_bytes',
    help: "WAL the server keeps for the WAL relay's replication slot (current position minus its confirmed position), at scrape time; only with outbox.relay.mode wal.",
    labelNames: [],
  },
  // outbox, from relay / optimistic sender events
  {
    kind: 'counter',
    name: 'outbox_claimed_total',
    help: 'Outbox messages claimed for publishing.',
    labelNames: ['path'],
  },
  {
    kind: 'counter',
    name: 'outbox_published_total',
    help: 'Outbox messages acked by the broker and recorded as sent.',
    labelNames: ['destination', 'type', 'path'],
  },
  {
    kind: 'counter',
    name: 'outbox_failed_total',
    help: 'Outbox publishes that did not end as sent, by reason (broker_error, timeout, stale_claim).',
    labelNames: ['reason'],
  },
  {
    kind: 'counter',
    name: 'outbox_released_total',
    help: 'Claimed outbox messages handed back unpublished (shutdown).',
    labelNames: ['path'],
  },
  {
    kind: 'counter',
    name: 'outbox_reaped_total',
    help: 'Expired outbox claims released by the reaper.',
    labelNames: [],
  },
  {
    kind: 'histogram',
    name: 'outbox_publish_duration_seconds',
    help: 'Broker publish call duration, observed once per message published.',
    labelNames: ['path'],
    buckets: LATENCY_BUCKETS,
  },
  {
    kind: 'histogram',
    name: 'outbox_batch_duration_seconds',
    help: 'One claim-publish-mark round, wall clock.',
    labelNames: ['path'],
    buckets: LATENCY_BUCKETS,
  },
  {
    kind: 'histogram',
    name: 'outbox_commit_to_publish_seconds',
    help: 'From the outbox row being written to the broker ack.',
    labelNames: ['path'],
    buckets: LAG_BUCKETS,
  },
  // relay process
  {
    kind: 'gauge',
    name: 'outbox_relay_running',
    help: 'Outbox relays running in this process (sum over instances = relay replicas).',
    labelNames: [],
  },
  {
    kind: 'gauge',
    name: 'outbox_relay_last_tick_timestamp_seconds',
    help: 'Unix time of the relay loop last completed tick (0 before the first).',
    labelNames: [],
  },
  {
    kind: 'gauge',
    name: 'outbox_relay_loop_consecutive_errors',
    help: 'Relay loop ticks failed in a row (0 when the last tick succeeded).',
    labelNames: [],
  },
  // inbox
  {
    kind: 'counter',
    name: 'inbox_processed_total',
    help: 'Messages handled and committed with their inbox row.',
    labelNames: ['consumer'],
  },
  {
    kind: 'counter',
    name: 'inbox_duplicates_total',
    help: 'Deliveries skipped because the inbox already held the message.',
    labelNames: ['consumer'],
  },
  {
    kind: 'counter',
    name: 'inbox_failed_total',
    help: 'Handler attempts rolled back (the broker redelivers).',
    labelNames: ['consumer'],
  },
  {
    kind: 'counter',
    name: 'inbox_dead_lettered_total',
    help: 'Messages kept as inbox dead letters after their last allowed attempt.',
    labelNames: ['consumer'],
  },
  {
    kind: 'counter',
    name: 'broker_dead_lettered_total',
    help: 'Messages a broker adapter dead-lettered (to its .dlq destination), by reason: missing-id, unusable-id, too-large, empty-body, not-json, too-deep, bad-headers, max-deliveries.',
    labelNames: ['broker', 'destination', 'reason'],
  },
  {
    kind: 'histogram',
    name: 'inbox_handler_duration_seconds',
    help: 'Inbox handler plus commit, for processed messages.',
    labelNames: ['consumer'],
    buckets: LATENCY_BUCKETS,
  },
  // sagas
  {
    kind: 'counter',
    name: 'saga_started_total',
    help: 'Sagas started.',
    labelNames: ['saga'],
  },
  {
    kind: 'counter',
    name: 'saga_completed_total',
    help: 'Sagas that completed.',
    labelNames: ['saga'],
  },
  {
    kind: 'counter',
    name: 'saga_compensated_total',
    help: 'Sagas that failed and were compensated.',
    labelNames: ['saga'],
  },
  {
    kind: 'counter',
    name: 'saga_failed_total',
    help: 'Sagas parked as failed (a compensation kept failing); need an operator.',
    labelNames: ['saga'],
  },
  {
    kind: 'counter',
    name: 'saga_step_retries_total',
    help: 'Step attempts that failed and were retried.',
    labelNames: ['saga', 'step'],
  },
  {
    kind: 'gauge',
    name: 'saga_active',
    help: 'Sagas running or compensating, from the database at scrape time.',
    labelNames: ['saga'],
  },
  {
    kind: 'histogram',
    name: 'saga_duration_seconds',
    help: 'Start to end of a saga, by outcome (completed, compensated, failed).',
    labelNames: ['saga', 'outcome'],
    buckets: SAGA_BUCKETS,
  },
  {
    kind: 'histogram',
    name: 'saga_step_duration_seconds',
    help: 'Duration of a step attempt that completed.',
    labelNames: ['saga', 'step'],
    buckets: LATENCY_BUCKETS,
  },
  // retention, from the retention loops of this process at scrape time
  {
    kind: 'counter',
    name: 'retention_rows_total',
    help: 'Rows the retention leader in this process removed, by what (sagas, outbox_sent, outbox_dead_letters, outbox_archive, inbox_processed, inbox_dead_letters) and action (deleted, archived).',
    labelNames: ['what', 'action'],
  },
  // the database pool and the probes themselves
  {
    kind: 'gauge',
    name: 'sage_db_pool_connections',
    help: 'Connections of the pool Sage uses, by state (total, idle, waiting = queued requests).',
    labelNames: ['state'],
  },
  {
    kind: 'counter',
    name: 'sage_metrics_probe_errors_total',
    help: 'Scrape-time database probes that failed or timed out (the gauges keep their last value).',
    labelNames: ['probe'],
  },
] as const satisfies readonly SageMetricDefinition[];

export type SageMetricName = (typeof SAGE_METRIC_DEFINITIONS)[number]['name'];

/** Names as Prometheus exposes them: histograms add `_bucket`, `_sum`, `_count`. */
export function exposedMetricNames(
  definitions: readonly SageMetricDefinition[] = SAGE_METRIC_DEFINITIONS,
): Set<string> {
  const names = new Set<string>();
  for (const d of definitions) {
    names.add(d.name);
    if (d.kind === 'histogram')
      for (const s of ['_bucket', '_sum', '_count']) names.add(d.name + s);
  }
  return names;
}

/** Where scrape-time values come from; each is optional (a relay-only process has no sagas). */
export interface SageMetricsSources {
  backlog?: () => Promise<OutboxBacklog>;
  activeSagas?: () => Promise<Map<string, number>>;
  pool?: () => PoolStats | undefined;
  /** The WAL relay's slot lag in bytes (null: no slot yet); only with `outbox.relay.mode: 'wal'`. */
  walSlotLag?: () => Promise<number | null>;
  /** Loop stats of the relays running in this process. */
  relays?: () => readonly LoopStats[];
  /** Rows removed so far by the retention loops of this process. */
  retention?: () => readonly RetentionRowsTotal[];
}

/** One `retention_rows_total` series: rows removed since the process started. */
export interface RetentionRowsTotal {
  what: string;
  action: 'deleted' | 'archived';
  total: number;
}

export interface SageMetricsOptions {
  registry: Registry;
  /** Bound on each scrape-time database query. Default 2000 ms. */
  probeTimeoutMs?: number;
  logger?: SageLogger;
}

type AnyMetric = Counter<string> | Gauge<string> | Histogram<string>;

/**
 * Sage's Prometheus metrics: counters and histograms fed by the typed saga / outbox / inbox events
 * (`onSagaEvent`, `onOutboxEvent`, `onInboxEvent` are listeners for `onEvent`), gauges computed
 * from the database at scrape time. Registers on the given registry; `dispose()` unregisters.
 */
export class SageMetrics {
  private readonly metrics = new Map<string, AnyMetric>();
  private disposed = false;
  private readonly registry: Registry;
  private readonly probeTimeoutMs: number;
  private readonly logger: SageLogger;
  private sources: SageMetricsSources = {};
  /** The backlog query in flight, shared by the three outbox gauges of one scrape. */
  private backlogInFlight: Promise<OutboxBacklog | undefined> | undefined;

  constructor(options: SageMetricsOptions) {
    this.registry = options.registry;
    this.probeTimeoutMs = options.probeTimeoutMs ?? 2000;
    this.logger = options.logger ?? silentLogger;
    for (const d of SAGE_METRIC_DEFINITIONS) this.register(d);
  }

  /** Sets where the scrape-time gauges read from. */
  setSources(sources: SageMetricsSources): void {
    this.sources = sources;
    this.backlogInFlight = undefined;
  }

  /** Removes every Sage metric from the registry (module shutdown, tests). */
  dispose(): void {
    this.disposed = true;
    for (const name of this.metrics.keys()) this.registry.removeSingleMetric(name);
    this.metrics.clear();
  }

  readonly onSagaEvent = (event: SagaEvent): void => {
    if (this.disposed) return;
    const saga = event.saga;
    switch (event.type) {
      case 'saga.started':
        this.counter('saga_started_total').inc({ saga });
        return;
      case 'saga.completed':
        this.counter('saga_completed_total').inc({ saga });
        this.histogram('saga_duration_seconds').observe(
          { saga, outcome: 'completed' },
          event.durationMs / 1000,
        );
        return;
      case 'saga.compensated':
        this.counter('saga_compensated_total').inc({ saga });
        this.histogram('saga_duration_seconds').observe(
          { saga, outcome: 'compensated' },
          event.durationMs / 1000,
        );
        return;
      case 'saga.failed':
        this.counter('saga_failed_total').inc({ saga });
        this.histogram('saga_duration_seconds').observe(
          { saga, outcome: 'failed' },
          event.durationMs / 1000,
        );
        return;
      case 'step.completed':
        this.histogram('saga_step_duration_seconds').observe(
          { saga, step: event.step },
          event.durationMs / 1000,
        );
        return;
      case 'step.retrying':
        this.counter('saga_step_retries_total').inc({ saga, step: event.step });
        return;
      default:
        return;
    }
  };

  readonly onOutboxEvent = (event: OutboxEvent): void => {
    if (this.disposed) return;
    switch (event.type) {
      case 'outbox.claimed':
        this.counter('outbox_claimed_total').inc({ path: event.path }, event.count);
        return;
      case 'outbox.published':
        this.counter('outbox_published_total').inc({
          destination: event.destination,
          type: event.messageType,
          path: event.path,
        });
        this.histogram('outbox_publish_duration_seconds').observe(
          { path: event.path },
          event.publishMs / 1000,
        );
        this.histogram('outbox_commit_to_publish_seconds').observe(
          { path: event.path },
          Math.max(0, event.commitToPublishMs) / 1000,
        );
        return;
      case 'outbox.failed':
        this.counter('outbox_failed_total').inc({ reason: event.reason });
        return;
      case 'outbox.batch':
        this.histogram('outbox_batch_duration_seconds').observe(
          { path: event.path },
          event.durationMs / 1000,
        );
        return;
      case 'outbox.released':
        this.counter('outbox_released_total').inc({ path: event.path }, event.count);
        return;
      case 'outbox.reaped':
        this.counter('outbox_reaped_total').inc(event.count);
        return;
      default:
        return;
    }
  };

  readonly onInboxEvent = (event: InboxEvent): void => {
    if (this.disposed) return;
    const consumer = event.consumer;
    switch (event.type) {
      case 'inbox.processed':
        this.counter('inbox_processed_total').inc({ consumer });
        this.histogram('inbox_handler_duration_seconds').observe(
          { consumer },
          event.durationMs / 1000,
        );
        return;
      case 'inbox.duplicate':
        this.counter('inbox_duplicates_total').inc({ consumer });
        return;
      case 'inbox.failed':
        this.counter('inbox_failed_total').inc({ consumer });
        return;
      case 'inbox.dead-lettered':
        this.counter('inbox_dead_lettered_total').inc({ consumer });
        return;
      default:
        return;
    }
  };

  /** Listener for `Broker.onDeadLetter`: counts what the adapter dead-lettered, by reason. */
  readonly onBrokerDeadLetter = (event: DeadLetteredMessage): void => {
    if (this.disposed) return;
    this.counter('broker_dead_lettered_total').inc({
      broker: event.broker,
      destination: event.destination,
      reason: event.reason,
    });
  };

  private register(d: SageMetricDefinition): void {
    const base = {
      name: d.name,
      help: d.help,
      labelNames: [...d.labelNames],
      registers: [this.registry],
    };
    let metric: AnyMetric;
    if (d.kind === 'counter' && d.name === 'retention_rows_total') {
      // Totals kept by the retention loops, read at scrape time.
      const counter: Counter<string> = new Counter({
        ...base,
        collect: () => {
          counter.reset();
          for (const r of this.sources.retention?.() ?? [])
            counter.inc({ what: r.what, action: r.action }, r.total);
        },
      });
      metric = counter;
    } else if (d.kind === 'counter') metric = new Counter(base);
    else if (d.kind === 'histogram')
      metric = new Histogram({ ...base, buckets: [...(d.buckets ?? LATENCY_BUCKETS)] });
    else {
      const gauge: Gauge<string> = new Gauge({
        ...base,
        collect: this.collectorFor(d.name, () => gauge),
      });
      metric = gauge;
    }
    this.metrics.set(d.name, metric);
  }

  /** The scrape-time collector of a gauge; undefined for gauges set elsewhere. */
  private collectorFor(
    name: string,
    gauge: () => Gauge<string>,
  ): (() => Promise<void>) | undefined {
    switch (name) {
      case 'outbox_pending_messages':
      case 'outbox_oldest_pending_age_seconds':
      case 'outbox_dead_letter_messages':
        return async () => {
          const backlog = await this.backlog();
          if (!backlog) return;
          gauge().set(
            name === 'outbox_pending_messages'
              ? backlog.pending
              : name === 'outbox_dead_letter_messages'
                ? backlog.deadLetters
                : backlog.oldestPendingAgeSeconds,
          );
        };
      case 'outbox_wal_slot_lag_bytes':
        return async () => {
          const read = this.sources.walSlotLag;
          if (!read) return;
          const lag = await this.probe('outbox_wal_slot_lag', read);
          if (lag !== undefined && lag !== null) gauge().set(lag);
        };
      case 'saga_active':
        return async () => {
          const read = this.sources.activeSagas;
          if (!read) return;
          const active = await this.probe('saga_active', read);
          if (!active) return;
          gauge().reset();
          for (const [saga, n] of active) gauge().set({ saga }, n);
        };
      case 'sage_db_pool_connections':
        return () => {
          const stats = this.sources.pool?.();
          if (stats) {
            gauge().set({ state: 'total' }, stats.total);
            gauge().set({ state: 'idle' }, stats.idle);
            gauge().set({ state: 'waiting' }, stats.waiting);
          }
          return Promise.resolve();
        };
      case 'outbox_relay_running':
      case 'outbox_relay_last_tick_timestamp_seconds':
      case 'outbox_relay_loop_consecutive_errors':
        return () => {
          const loops = this.sources.relays?.() ?? [];
          const value =
            name === 'outbox_relay_running'
              ? loops.length
              : name === 'outbox_relay_loop_consecutive_errors'
                ? Math.max(0, ...loops.map((l) => l.consecutiveErrors))
                : Math.max(0, ...loops.map((l) => (l.lastTickAt ?? 0) / 1000));
          gauge().set(value);
          return Promise.resolve();
        };
      default:
        return undefined;
    }
  }

  /**
   * One backlog query per scrape: prom-client collects all metrics concurrently, so the three
   * outbox gauges share the query in flight; the next scrape runs a fresh one.
   */
  private backlog(): Promise<OutboxBacklog | undefined> {
    const read = this.sources.backlog;
    if (!read) return Promise.resolve(undefined);
    if (!this.backlogInFlight) {
      const query = this.probe('outbox_backlog', read);
      this.backlogInFlight = query;
      void query.finally(() => {
        if (this.backlogInFlight === query) this.backlogInFlight = undefined;
      });
    }
    return this.backlogInFlight;
  }

  private async probe<T>(probe: string, read: () => Promise<T>): Promise<T | undefined> {
    try {
      return await withTimeout(`${probe} query`, this.probeTimeoutMs, read);
    } catch (error) {
      this.probeFailed(probe, error);
      return undefined;
    }
  }

  private probeFailed(probe: string, error: unknown): void {
    this.counter('sage_metrics_probe_errors_total').inc({ probe });
    this.logger.warn('metrics probe failed; its gauges keep their last value', {
      event: 'sage.metrics.probe_failed',
      probe,
      error: errorText(error),
    });
  }

  private counter(name: SageMetricName): Counter<string> {
    return this.metrics.get(name) as Counter<string>;
  }

  private histogram(name: SageMetricName): Histogram<string> {
    return this.metrics.get(name) as Histogram<string>;
  }
}
