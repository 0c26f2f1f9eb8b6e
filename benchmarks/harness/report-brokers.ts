import { PLOTS } from './plots';
import { int, ms, num, othersCpu, pct, ratio } from './report-format';
import type {
  AckLatencyMeasurement,
  OutboxBrokerThroughputScenarioResult,
  OutboxCommitToAckScenarioResult,
  PeerScenarioResult,
  SagaRemoteScenarioResult,
  ScenarioResult,
  SoakScenarioResult,
} from './results';

/** The targets of issue 5 (DESIGN §7). Reported against, never asserted. */
export const BROKER_TARGETS = {
  relayP99Ms: 25,
  optimisticP99Ms: 5,
  throughputRatio: 0.75,
};

const verdict = (ok: boolean): string => (ok ? 'met' : '**not met**');

function configLine(config: Record<string, number | string | boolean>): string {
  return Object.entries(config)
    .map(([k, v]) => `${k} ${String(v)}`)
    .join(', ');
}

function plot(plots: ReadonlySet<string>, file: string, alt: string): string[] {
  return plots.has(file) ? [`![${alt}](benchmarks/${file})`, ''] : [];
}

/** Rows for the targets table, from the real-broker scenarios. */
export function brokerTargetRows(scenarios: readonly ScenarioResult[]): string[] {
  const rows: string[] = [];
  for (const s of scenarios) {
    if (s.kind === 'outbox-commit-to-ack') {
      const rate = s.config.perBrokerRate as number;
      for (const p of s.points.filter((x) => x.offeredRatePerSec === rate)) {
        const relay = p.variants.relay;
        const raw = p.variants.raw;
        if (relay) {
          rows.push(
            `| commit → ${p.broker} ack p99 ≤ ${BROKER_TARGETS.relayP99Ms} ms through the relay with NOTIFY, ${int(rate)} msg/s | ` +
              `${ms(relay.latencyMs.p99)} ms (raw ${raw ? ms(raw.latencyMs.p99) : '–'} ms) | ${verdict(relay.latencyMs.p99 <= BROKER_TARGETS.relayP99Ms)} |`,
          );
        }
        const opt = p.variants.optimistic;
        rows.push(
          `| commit → ${p.broker} ack p99 ≤ ${BROKER_TARGETS.optimisticP99Ms} ms with optimistic sending, ${int(rate)} msg/s | ` +
            (opt
              ? `${ms(opt.latencyMs.p99)} ms | ${verdict(opt.latencyMs.p99 <= BROKER_TARGETS.optimisticP99Ms)} |`
              : `not measured: ${s.notRun.find((n) => n.variant === 'optimistic')?.reason ?? 'variant not run'} | – |`),
        );
      }
    }
    if (s.kind === 'outbox-broker-throughput') {
      for (const b of s.brokers) {
        for (const p of b.points) {
          rows.push(
            `| relay → ${b.broker} throughput ≥ ${BROKER_TARGETS.throughputRatio * 100}% of the raw client, ${p.workers} worker(s) | ` +
              `${num(p.subject.throughputPerSec)} / ${num(p.ceiling.throughputPerSec)} msg/s; ${Math.round(p.ratio.throughput * 100)}% | ` +
              `${verdict(p.ratio.throughput >= BROKER_TARGETS.throughputRatio)} |`,
          );
        }
      }
    }
  }
  return rows;
}

export function brokerThroughputSection(
  s: OutboxBrokerThroughputScenarioResult,
  cores: number,
  plots: ReadonlySet<string>,
): string[] {
  const lines: string[] = [`### ${s.name}`, '', s.description, ''];
  lines.push(
    `Subject: ${s.labels.subject}. Ceiling: ${s.labels.ceiling}. ${configLine(s.config)}.`,
    '',
    'Each point alternates relay and raw drains (relay, raw, raw, relay, ...); the ratio is the ' +
      'median of the paired drains. Before each relay drain the outbox is truncated, pre-loaded, ' +
      'vacuumed and checkpointed and the destination purged (RabbitMQ queue, NATS stream).',
    '',
  );
  lines.push(
    ...plot(plots, PLOTS.brokerThroughput, 'relay throughput per broker and worker count'),
  );
  lines.push(
    '| broker | workers | relay msg/s | raw client msg/s | ratio | raw relay loop msg/s | relay ÷ raw loop | node CPU % (relay / raw) | PG backends CPU % | broker server CPU % (relay / raw) | other processes CPU % (relay / raw) | RSS max MB (relay / raw) | PG connections max | failed publishes |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const b of s.brokers) {
    if (b.error) {
      lines.push(
        `| ${b.broker} | – | failed: ${b.error.replace(/\|/g, '\\|')} | | | | | | | | | | | |`,
      );
      continue;
    }
    for (const p of b.points) {
      const a = p.subject.resources;
      const r = p.ceiling.resources;
      lines.push(
        `| ${b.broker} | ${p.workers} | ${num(p.subject.throughputPerSec)} | ${num(p.ceiling.throughputPerSec)} | ${ratio(p.ratio.throughput)} | ` +
          `${p.rawRelay ? num(p.rawRelay.throughputPerSec) : '–'} | ${p.rawRelay ? ratio(p.subject.throughputPerSec / p.rawRelay.throughputPerSec) : '–'} | ` +
          `${a.processCpuPct} / ${r.processCpuPct} | ${pct(a.pgBackendCpuPct)} | ` +
          `${pct(a.brokerServerCpuPct ?? null)} / ${pct(r.brokerServerCpuPct ?? null)} | ` +
          `${pct(othersCpu(a, cores))} / ${pct(othersCpu(r, cores))} | ${a.rssMaxMb} / ${r.rssMaxMb} | ` +
          `${a.pgConnectionsMax} | ${p.subject.notes.failedPublishes ?? 0} |`,
      );
    }
  }
  lines.push(
    '',
    "*Raw relay loop*: the relay's structure without Sage — node-postgres claim (the same " +
      'statement) → the raw client publishing those rows with the same window → mark-sent, in series, ' +
      'one loop per worker, one drain per point. Relay ÷ raw loop near 1 means the gap to the raw ' +
      "client is the claim → publish → mark structure (and the database), not Sage's code. *Other " +
      "processes* includes the broker servers (shown separately) and other engineers' work.",
    '',
  );
  const loops = s.brokers.flatMap((b) =>
    b.points
      .filter((p) => p.rawRelay)
      .map((p) => p.subject.throughputPerSec / p.rawRelay!.throughputPerSec),
  );
  const ratios = s.brokers.flatMap((b) => b.points.map((p) => p.ratio.throughput));
  if (loops.length && ratios.length) {
    const med = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
    const loop = med(loops);
    lines.push(
      `**What limits it.** Median relay ÷ raw client ${ratio(med(ratios))}; median relay ÷ raw relay ` +
        `loop ${ratio(loop)}, so Sage's own code (TypeORM, row mapping, the adapter, bookkeeping) ` +
        `accounts for about ${Math.max(0, Math.round((1 - loop) * 100))}% and the rest of the gap to ` +
        'the raw client is the structure: each worker claims (one statement), publishes the claimed ' +
        'batch and waits for every ack, then marks it sent (one statement) before it claims again, ' +
        'while the raw client keeps its window full all the time; and PostgreSQL, Node and the broker ' +
        'server share the same cores. Closing it means overlapping the next claim with the current ' +
        'publish (claim one batch ahead), or more workers on more cores.',
      '',
    );
  }
  lines.push(
    'Clients: ' +
      s.brokers.map((b) => `${b.broker} ${b.client} at \`${b.address}\``).join('; ') +
      '.',
  );
  if (s.skipped.length)
    lines.push('', `Skipped: ${s.skipped.map((x) => `${x.broker} (${x.reason})`).join(', ')}.`);
  return lines;
}

function variantCells(m: AckLatencyMeasurement | undefined): string {
  if (!m) return '– | – | – | – | –';
  return `${num(m.achievedRatePerSec)} | ${ms(m.latencyMs.p50)} | ${ms(m.latencyMs.p95)} | ${ms(m.latencyMs.p99)} | ${ms(m.latencyMs.p999)}`;
}

export function commitToAckSection(
  s: OutboxCommitToAckScenarioResult,
  cores: number,
  plots: ReadonlySet<string>,
): string[] {
  const lines: string[] = [`### ${s.name}`, '', s.description, ''];
  lines.push(
    `Variants: ${Object.entries(s.labels)
      .map(([variant, label]) => `**${variant}**: ${label}.`)
      .join(' ')} ${configLine(s.config)}.`,
    '',
    'Open loop: transaction n is due at start + n / rate whatever the system does, so a slow side ' +
      'queues instead of slowing the load (no coordinated omission); when the machine cannot commit ' +
      'at the offered rate, the achieved rate says so. Variants alternate slice by slice.',
    '',
  );
  lines.push(...plot(plots, PLOTS.ackLatencyByRate, 'commit to ack latency against offered load'));
  lines.push(...plot(plots, PLOTS.ackLatencyByBroker, 'commit to ack latency per broker'));
  lines.push(
    '| broker | offered msg/s | variant | achieved msg/s | p50 | p95 | p99 | p99.9 | p50 ÷ raw | p99 ÷ raw | node CPU % | PG backends CPU % | broker server CPU % | other CPU % | RSS max MB | PG connections max | missing |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const p of s.points) {
    for (const [variant, m] of Object.entries(p.variants)) {
      const r = variant === 'raw' ? undefined : p.ratio[variant as 'relay' | 'optimistic'];
      lines.push(
        `| ${p.broker} | ${int(p.offeredRatePerSec)} | ${variant} | ${variantCells(m)} | ` +
          `${r ? ratio(r.p50) : ''} | ${r ? ratio(r.p99) : ''} | ${m.resources.processCpuPct} | ${pct(m.resources.pgBackendCpuPct)} | ` +
          `${pct(m.resources.brokerServerCpuPct ?? null)} | ` +
          `${pct(othersCpu(m.resources, cores))} | ${m.resources.rssMaxMb} | ${m.resources.pgConnectionsMax} | ${m.missing} |`,
      );
    }
  }
  lines.push('', 'Latencies in milliseconds.');
  const opt = s.points.filter((p) => p.variants.optimistic);
  if (opt.length) {
    lines.push(
      '',
      "Who published in the optimistic variant (the optimistic sender's own counters: selected = " +
        'messages handed to it after commit; skipped = not tried because `maxConcurrent` attempts were ' +
        'already running; the rest went to the relay, which also wins races for rows it claims first):',
      '',
      '| broker | offered msg/s | selected | sent optimistically | skipped (saturated) | released / left to relay | relay claimed |',
      '|---|---:|---:|---:|---:|---:|---:|',
    );
    for (const p of opt) {
      const n = p.variants.optimistic!.notes;
      const v = (k: string): number => Number(n[k] ?? 0);
      lines.push(
        `| ${p.broker} | ${int(p.offeredRatePerSec)} | ${int(v('optimisticSelected'))} | ${int(v('optimisticSent'))} ` +
          `(${v('optimisticSelected') ? Math.round((v('optimisticSent') / v('optimisticSelected')) * 100) : 0}%) | ` +
          `${int(v('optimisticSkippedSaturated'))} | ${int(v('optimisticReleased'))} / ${int(v('optimisticLeftToRelay'))} | ${int(v('relayClaimed'))} |`,
      );
    }
  }
  if (s.notRun.length)
    lines.push('', ...s.notRun.map((n) => `- Not run: ${n.variant}: ${n.reason}.`));
  if (s.skipped.length)
    lines.push('', `Skipped: ${s.skipped.map((x) => `${x.broker} (${x.reason})`).join(', ')}.`);
  return lines;
}

export function soakSection(
  s: SoakScenarioResult,
  cores: number,
  plots: ReadonlySet<string>,
): string[] {
  const lines: string[] = [`### ${s.name}`, '', s.description, ''];
  lines.push(`${configLine(s.config)}.`, '');
  lines.push(...plot(plots, PLOTS.soak, 'soak: RSS and latency over time'));
  const first = s.samples[0];
  const last = s.samples[s.samples.length - 1];
  lines.push(
    '| committed | missing | errors | p50 | p99 | p99.9 | max | RSS first → last MB | RSS growth, 2nd half | node CPU % | other CPU % | PG connections max |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    `| ${int(s.committed)} | ${s.missing} | ${s.errors} | ${ms(s.latencyMs.p50)} | ${ms(s.latencyMs.p99)} | ${ms(s.latencyMs.p999)} | ` +
      `${ms(s.latencyMs.max)} | ${first?.rssMb ?? '–'} → ${last?.rssMb ?? '–'} | ${s.rssGrowthMbPerMin} MB/min | ` +
      `${s.resources.processCpuPct} | ${pct(othersCpu(s.resources, cores))} | ${s.resources.pgConnectionsMax} |`,
  );
  return lines;
}

export function peerSection(s: PeerScenarioResult, cores: number): string[] {
  const lines: string[] = [`### ${s.name}`, '', s.description, ''];
  if (s.error || !s.drain || !s.latency) {
    lines.push(`Not measured: ${s.error ?? 'no result'}.`);
    return lines;
  }
  lines.push(`Broker: ${s.broker}. ${configLine(s.config)}.`, '');
  const d = s.drain;
  const l = s.latency;
  const row = (
    who: string,
    drain: PeerScenarioResult['drain'] extends infer D
      ? D extends { sage: infer M }
        ? M
        : never
      : never,
    lat: AckLatencyMeasurement,
  ): string =>
    `| ${who} | ${num(drain.throughputPerSec)}${drain.notes.unfinished ? ` (${int(Number(drain.notes.unfinished))} not acked in time)` : ''} | ${num(lat.achievedRatePerSec)} | ${ms(lat.latencyMs.p50)} | ${ms(lat.latencyMs.p95)} | ` +
    `${ms(lat.latencyMs.p99)} | ${ms(lat.latencyMs.p999)} | ${lat.missing} | ${drain.resources.processCpuPct} / ${lat.resources.processCpuPct} | ` +
    `${pct(drain.resources.pgBackendCpuPct)} / ${pct(lat.resources.pgBackendCpuPct)} | ${pct(othersCpu(lat.resources, cores))} | ` +
    `${drain.resources.pgConnectionsMax} / ${lat.resources.pgConnectionsMax} |`;
  lines.push(
    `| library | drain msg/s | achieved msg/s at ${int(l.offeredRatePerSec)} offered | p50 | p95 | p99 | p99.9 | missing | node CPU % (drain / latency) | PG backends CPU % (drain / latency) | other CPU % | PG connections max (drain / latency) |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    row('Sage', d.sage, l.sage),
    row(`${s.peer.name} ${s.peer.version} (polling)`, d.peer, l.peer),
    ...(d.peerReplication && l.peerReplication
      ? [
          row(
            `${s.peer.name} ${s.peer.version} (logical replication)`,
            d.peerReplication,
            l.peerReplication,
          ),
        ]
      : []),
    '',
    "Latencies in milliseconds, commit → broker ack. The peer's drain is timed to its last broker " +
      'ack (its "processed" mark comes after); Sage\'s to its last batch recorded sent.',
  );
  return lines;
}

const SAGA_REMOTE_METHOD =
  `- *Closed loop*, as for saga-local-3step: N workers each start a saga (\`SagaService.start()\`) and
  start the next the moment \`saga.completed\` fires (\`engine.onEvent\`, no polling); latency is
  start → completed, so it includes both relays' NOTIFY wake-ups, two broker round trips, the
  participant's inbox transaction and the orchestrator's reply transaction.
- *Raw side*, same broker, same concurrency, in alternating slices: node-postgres and the adapter's
  client library (same durability settings, same consumer concurrency: Kafka 4 partitions at once,
  RabbitMQ prefetch 32, NATS one message at a time), doing the minimal round trip: one transaction
  inserting the business row, the saga state row and the command row, publish; the participant's
  transaction inserting its row (idempotent) and the reply row, publish; one transaction updating
  the state. Three commits; no relay (published right after commit), no inbox rows, no step rows,
  no leases. The gap is what Sage's durability machinery costs per remote step.`.split('\n');

function countsText(c: Record<string, number>): string {
  const total = Object.values(c).reduce((a, b) => a + b, 0);
  const parts = Object.entries(c)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${v} ${k}`);
  return `${Math.round(total * 100) / 100} (${parts.join(', ')})`;
}

export function sagaRemoteSection(s: SagaRemoteScenarioResult, cores: number): string[] {
  const lines: string[] = [`### ${s.name}`, '', s.description, ''];
  lines.push(...SAGA_REMOTE_METHOD, '');
  lines.push(`Subject: ${s.labels.subject}. Ceiling: ${s.labels.ceiling}.`, '');
  lines.push(`${configLine(s.config)}.`, '');
  const calibrated = s.brokers.filter((b) => b.calibration);
  if (calibrated.length) {
    lines.push(
      `Statements per saga, counted over ${calibrated[0]!.calibration!.operations} sagas run one at a time ` +
        "(each side's own connections, background loops included; BEGIN..COMMIT pairs are transactions):",
      '',
      ...calibrated.map(
        (b) =>
          `- ${b.broker}: Sage ${countsText(b.calibration!.subject)}; raw ${countsText(b.calibration!.ceiling)}.`,
      ),
      '',
    );
  }
  lines.push(
    '| broker | concurrency | sagas/s | raw round trips/s | ratio | p50 | p95 | p99 | raw p50 | raw p95 | raw p99 | p50 ratio | p99 ratio | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const b of s.brokers) {
    if (!b.points.length) {
      lines.push(`| ${b.broker} | not measured: ${b.error ?? '?'} | | | | | | | | | | | | |`);
      continue;
    }
    for (const p of b.points) {
      const a = p.subject;
      const r = p.ceiling;
      lines.push(
        `| ${b.broker} | ${p.concurrency} | ${num(a.throughputPerSec)} | ${num(r.throughputPerSec)} | ${ratio(p.ratio.throughput)} | ` +
          `${ms(a.latencyMs.p50)} | ${ms(a.latencyMs.p95)} | ${ms(a.latencyMs.p99)} | ${ms(r.latencyMs.p50)} | ${ms(r.latencyMs.p95)} | ` +
          `${ms(r.latencyMs.p99)} | ${ratio(p.ratio.p50)} | ${ratio(p.ratio.p99)} | ${a.errors} / ${r.errors} |`,
      );
    }
  }
  lines.push('', 'Latencies in milliseconds. Resources (Sage / raw):', '');
  lines.push(
    '| broker | concurrency | statements per saga | node CPU % | PG backends CPU % | broker servers CPU % | other processes CPU % | RSS max MB | PG connections max | active (mean) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const b of s.brokers) {
    for (const p of b.points) {
      const a = p.subject.resources;
      const r = p.ceiling.resources;
      lines.push(
        `| ${b.broker} | ${p.concurrency} | ${p.subject.statementsPerOp} / ${p.ceiling.statementsPerOp} | ` +
          `${a.processCpuPct} / ${r.processCpuPct} | ${pct(a.pgBackendCpuPct)} / ${pct(r.pgBackendCpuPct)} | ` +
          `${pct(a.brokerServerCpuPct ?? null)} / ${pct(r.brokerServerCpuPct ?? null)} | ` +
          `${pct(othersCpu(a, cores))} / ${pct(othersCpu(r, cores))} | ${a.rssMaxMb} / ${r.rssMaxMb} | ` +
          `${a.pgConnectionsMax} / ${r.pgConnectionsMax} | ${a.pgConnectionsActiveMean} / ${r.pgConnectionsActiveMean} |`,
      );
    }
  }
  const withLegs = s.brokers.filter((b) => b.legs?.length);
  if (withLegs.length) {
    const names = Object.keys(withLegs[0]!.legs![0]!.sage).filter((k) => k !== 'sagas');
    lines.push(
      '',
      'Where the time goes: median milliseconds of each leg of one saga (Sage / raw), over every saga ' +
        'of the point with all six instants (warm-up included). *Acked* is when the publisher saw the ' +
        "broker's acknowledgement (Sage: the relay's `publish()` resolved); *delivered* is when the consumer's " +
        'handler was called. Legs can overlap (a message may be delivered before its ack reaches the publisher).',
      '',
      `| broker | concurrency | ${names.join(' | ')} |`,
      `|---|---:|${names.map(() => '---:').join('|')}|`,
    );
    for (const b of withLegs) {
      for (const l of b.legs!) {
        lines.push(
          `| ${b.broker} | ${l.concurrency} | ${names.map((n) => `${ms(l.sage[n] ?? NaN)} / ${ms(l.raw[n] ?? NaN)}`).join(' | ')} |`,
        );
      }
    }
  }
  const notes = s.brokers.flatMap((b) =>
    b.points
      .filter((p) => Object.keys(p.subject.notes).length)
      .map(
        (p) =>
          `- ${b.broker} c=${p.concurrency} Sage: ${Object.entries(p.subject.notes)
            .map(([k, v]) => `${k} ${String(v)}`)
            .join(', ')}.`,
      ),
  );
  if (notes.length) lines.push('', ...notes);
  if (s.skipped.length)
    lines.push('', `Skipped: ${s.skipped.map((x) => `${x.broker} (${x.reason})`).join(', ')}.`);
  return lines;
}

/** One history-table cell for the real-broker scenarios. */
export function brokerHistoryCell(s: ScenarioResult): string | null {
  if (s.kind === 'saga-remote') {
    return s.brokers
      .map((b) =>
        b.points.length
          ? `${b.broker} ${b.points.map((p) => `c=${p.concurrency} ${num(p.subject.throughputPerSec)} / ${num(p.ceiling.throughputPerSec)} sagas/s (${ratio(p.ratio.throughput)})`).join(', ')}`
          : `${b.broker} failed`,
      )
      .join('; ');
  }
  if (s.kind === 'outbox-broker-throughput') {
    return s.brokers
      .map((b) =>
        b.points.length
          ? `${b.broker} ${b.points.map((p) => `${p.workers}w ${num(p.subject.throughputPerSec)} / ${num(p.ceiling.throughputPerSec)} (${ratio(p.ratio.throughput)})`).join(', ')}`
          : `${b.broker} failed`,
      )
      .join('; ');
  }
  if (s.kind === 'outbox-commit-to-ack') {
    return s.points
      .map(
        (p) =>
          `${p.broker}@${int(p.offeredRatePerSec)}: p99 ` +
          Object.entries(p.variants)
            .map(([v, m]) => `${v} ${ms(m.latencyMs.p99)}`)
            .join(' / ') +
          ' ms',
      )
      .join('; ');
  }
  if (s.kind === 'peer')
    return s.drain && s.latency
      ? `drain Sage ${num(s.drain.sage.throughputPerSec)} / peer ${num(s.drain.peer.throughputPerSec)} msg/s; p99 Sage ${ms(s.latency.sage.latencyMs.p99)} / peer ${ms(s.latency.peer.latencyMs.p99)} ms`
      : `not measured: ${s.error ?? '?'}`;
  if (s.kind === 'soak')
    return `p99 ${ms(s.latencyMs.p99)} ms, RSS growth ${s.rssGrowthMbPerMin} MB/min over ${s.samples.length} samples`;
  return null;
}
