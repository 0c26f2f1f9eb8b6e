import { int, num, pct, ratio } from './report-format';
import type {
  ConsumerDrainMeasurement,
  ConsumerThroughputScenarioResult,
  ScenarioResult,
} from './results';

/** The consumer target (issue 17): the inbox consumer at least half the raw client's rate. */
const TARGET_INBOX_TO_RAW = 0.5;

const cpu = (v: number | null): string => (v === null ? 'n/a' : num(v));

function row(label: string, m: ConsumerDrainMeasurement | undefined): string {
  if (!m) return `| ${label} | – | – | – | – | – | – |`;
  return (
    `| ${label} | ${num(m.throughputPerSec)} | ${m.trials.map((t) => num(t.perSec)).join(', ')} | ` +
    `${cpu(m.nodeCpuUsPerMsg)} | ${cpu(m.pgBackendCpuUsPerMsg)} | ${cpu(m.pgServerCpuUsPerMsg)} | ` +
    `${m.trials.map((t) => t.loadAvg1m).join(', ')} |`
  );
}

/** The consumer-throughput section of docs/benchmarks.md: inbox vs raw client vs adapter alone, per broker. */
export function consumerThroughputSection(s: ConsumerThroughputScenarioResult): string[] {
  const c = s.config;
  const lines: string[] = [`### ${s.name}`, '', s.description, ''];
  lines.push(
    `- *Backlog.* ${int(Number(c.messages))} messages of about ${int(Number(c.payloadBytes))} bytes of JSON, ` +
      `${int(Number(c.keys))} keys round robin, published once per broker before any drain (Kafka ` +
      `${String(c.kafkaPartitions)} partitions; RabbitMQ ${String(c.rabbitQueue)}; NATS ${String(c.natsStorage)}); ` +
      'each drain is a new consumer group reading all of it from the start.',
    '- *Inbox.* `SagaOutboxModule` with the adapter as `broker` and an `@IdempotentHandler` that inserts one ' +
      `row per message through the inbox transaction's \`manager\` (pool of ${String(c.poolSize)}); the drain ends ` +
      'when the last business row is committed, and every drain is checked: one row per message, no dead letters.',
    "- *Raw.* The adapter's client library with the adapter's settings (kafkajs batches handled in order, 4 " +
      'partitions at once, offsets committed per batch; amqplib with prefetch 32 and manual acks; a JetStream ' +
      'durable pull consumer pulling 16 at a time, explicit acks), parsing each body, no Sage, no database.',
    "- *Adapter alone.* The Sage adapter subscribed with a handler that does nothing: the adapter's own cost " +
      "next to the raw client, so the database's share of the inbox figure shows.",
    `- *Order.* Drains rotate (inbox, raw, adapter; raw, adapter, inbox; ...), ${String(c.repetitions)} per side. ` +
      'Time runs from the first message handed over to the last, so connecting and group joins are not timed. ' +
      'CPU per message is over the same windows: this Node process, the PostgreSQL backends of the inbox pool, ' +
      'and every PostgreSQL process (WAL writer and checkpointer included).',
    '',
  );
  for (const b of s.brokers) {
    lines.push(`**${b.broker}** (${b.client}, ${b.address})`, '');
    if (b.error || !b.ratio) {
      lines.push(`Failed: ${b.error ?? 'no result'}.`, '');
      continue;
    }
    const met = b.ratio.inboxToRaw >= TARGET_INBOX_TO_RAW ? 'met' : 'not met';
    lines.push(
      '| consumer | msg/s | each drain | Node CPU µs/msg | PG backends µs/msg | all PG µs/msg | load (1 min) at each drain |',
      '|---|---:|---:|---:|---:|---:|---:|',
      row('inbox (@IdempotentHandler + INSERT)', b.inbox),
      row('raw client, no database', b.raw),
      row('adapter alone, no database', b.adapter),
      '',
      `Inbox ÷ raw **${ratio(b.ratio.inboxToRaw)}** (each pair ${b.ratio.pairedInboxToRaw.map(ratio).join(', ')}; ` +
        `target ≥ ${TARGET_INBOX_TO_RAW}: ${met}); adapter alone ÷ raw ${ratio(b.ratio.adapterToRaw)}; ` +
        `inbox ÷ adapter alone ${ratio(b.ratio.inboxToAdapter)}. Redeliveries seen: inbox ` +
        `${b.inbox?.duplicates ?? 0}, adapter ${b.adapter?.duplicates ?? 0}. Machine busy over the inbox drains: ` +
        `${pct(b.inbox?.resources.machineCpuPct ?? null)}% of all cores.`,
      '',
    );
  }
  for (const sk of s.skipped) lines.push(`- ${sk.broker}: skipped (${sk.reason}).`);
  return lines;
}

/** The history line's figures, or null for another scenario. */
export function consumerHistoryCell(s: ScenarioResult): string | null {
  if (s.kind !== 'consumer-throughput') return null;
  return s.brokers
    .map((b) =>
      b.ratio && b.inbox && b.raw
        ? `${b.broker}: inbox ${num(b.inbox.throughputPerSec)} / raw ${num(b.raw.throughputPerSec)} msg/s (${ratio(b.ratio.inboxToRaw)})`
        : `${b.broker}: failed`,
    )
    .join('; ');
}
