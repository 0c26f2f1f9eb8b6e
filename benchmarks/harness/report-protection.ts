import { int, ms, num, othersCpu, pct, ratio } from './report-format';
import type { DataProtectionScenarioResult, ScenarioResult } from './results';

/** The data-protection-cost section of docs/benchmarks.md: encryption on ÷ off, per part. */
export function protectionSection(s: DataProtectionScenarioResult, cores: number): string[] {
  const c = s.config;
  const lines: string[] = [`### ${s.name}`, '', s.description, ''];
  lines.push(
    `- *Same run, interleaved.* "Off" is Sage without \`dataProtection\`; "on" is the same work with it ` +
      `(\`createDataProtection\`, master key in memory, ${int(Number(c.subjects))} data subjects whose keys are in ` +
      '`sage.subject_key`, created before the measurement and cached as by default). The ratio is on ÷ off: below 1 ' +
      'for throughput, above 1 for latency is what encryption costs.',
    `- *Saga.* The 3-step local saga of saga-local-3step, closed loop, started with \`engine.start()\` and timed to ` +
      "`saga.completed`; on, the input's name, e-mail and address are encrypted with the customer's key and each " +
      "step's result has one encrypted field. On and off alternate in slices.",
    `- *Outbox.* ${int(Number(c.outboxMessages))} messages of about 1 kB written by \`OutboxPublisher.publish\` ` +
      `(${String(c.messagesPerTx)} per transaction, ${String(c.writers)} transactions in flight), then drained by ` +
      'one `OutboxRelay` to the in-memory broker; on, three fields of each payload are encrypted per customer. ' +
      `Trials alternate off, on, on, off (${String(c.outboxRepetitions)} per side).`,
    '- *Per message.* `sealMessage` then `openMessage` (what a consumer runs before its handler), one at a time ' +
      'with warm keys: the CPU cost alone.',
    '',
  );
  const cal = s.saga.calibration;
  const total = (x: Record<string, number>) =>
    Math.round(Object.values(x).reduce((a, b) => a + b, 0) * 100) / 100;
  lines.push(
    `Statements per saga, ${cal.operations} sagas one at a time: on ${total(cal.subject)}, off ${total(cal.ceiling)}.`,
    '',
    '| concurrency | on sagas/s | off sagas/s | ratio | on p50 / p95 / p99 | off p50 / p95 / p99 | p50 ratio | p99 ratio | other processes CPU % (on / off) | errors |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const p of s.saga.points) {
    const a = p.subject;
    const b = p.ceiling;
    lines.push(
      `| ${p.concurrency} | ${num(a.throughputPerSec)} | ${num(b.throughputPerSec)} | ${ratio(p.ratio.throughput)} | ` +
        `${ms(a.latencyMs.p50)} / ${ms(a.latencyMs.p95)} / ${ms(a.latencyMs.p99)} | ` +
        `${ms(b.latencyMs.p50)} / ${ms(b.latencyMs.p95)} / ${ms(b.latencyMs.p99)} | ` +
        `${ratio(p.ratio.p50)} | ${ratio(p.ratio.p99)} | ` +
        `${pct(othersCpu(a.resources, cores))} / ${pct(othersCpu(b.resources, cores))} | ${a.errors} / ${b.errors} |`,
    );
  }
  const o = s.outbox;
  lines.push(
    '',
    'Latencies in milliseconds.',
    '',
    '| outbox | on msg/s | off msg/s | ratio |',
    '|---|---:|---:|---:|',
    `| write (publish in transactions) | ${num(o.on.writePerSec)} | ${num(o.off.writePerSec)} | ${ratio(o.ratio.write)} |`,
    `| relay drain | ${num(o.on.drainPerSec)} | ${num(o.off.drainPerSec)} | ${ratio(o.ratio.drain)} |`,
    `| write + drain | ${num(o.on.endToEndPerSec)} | ${num(o.off.endToEndPerSec)} | ${ratio(o.ratio.endToEnd)} |`,
    '',
    `Stored payload: ${int(o.on.storedPayloadBytes)} bytes on, ${int(o.off.storedPayloadBytes)} off.` +
      (o.on.errors || o.off.errors
        ? ` Errors: on ${o.on.errors}, off ${o.off.errors} (${o.on.firstError ?? o.off.firstError}).`
        : ''),
    '',
    `Per message (${int(s.consume.messages)} messages, µs): seal p50 ${s.consume.sealUs.p50}, mean ${s.consume.sealUs.mean}, ` +
      `p99 ${s.consume.sealUs.p99}; open p50 ${s.consume.openUs.p50}, mean ${s.consume.openUs.mean}, p99 ${s.consume.openUs.p99}.`,
  );
  return lines;
}

/** The history line's figures, or null for another scenario. */
export function protectionHistoryCell(s: ScenarioResult): string | null {
  if (s.kind !== 'data-protection') return null;
  const sagas = s.saga.points
    .map((p) => `c=${p.concurrency}: ${ratio(p.ratio.throughput)}`)
    .join(', ');
  return (
    `on ÷ off — sagas/s ${sagas}; outbox write ${ratio(s.outbox.ratio.write)}, drain ${ratio(s.outbox.ratio.drain)}; ` +
    `open ${s.consume.openUs.p50} µs/msg`
  );
}
