import { int, num, ratio } from './report-format';
import type {
  ContractsComparison,
  ContractsThroughput,
  ContractValidationScenarioResult,
  ScenarioResult,
} from './results';
import type { LatencySummary } from './stats';

const errorsOf = (on: ContractsThroughput, off: ContractsThroughput): string =>
  on.errors || off.errors
    ? ` Errors: on ${on.errors}, off ${off.errors} (${on.firstError ?? off.firstError}).`
    : '';

const row = (part: string, x: ContractsComparison): string =>
  `| ${part} | ${num(x.on.perSec)} | ${num(x.off.perSec)} | ${ratio(x.ratio)} | ` +
  `${ratio(x.pairMedianRatio)} (${x.pairRatios.map(ratio).join(', ')}) | ${x.validationCpuPct} |`;

const us = (x: LatencySummary): string => `${x.p50} | ${x.p99} | ${x.mean}`;

/** The contract-validation-cost section of docs/benchmarks.md: contracts on ÷ off, per part. */
export function contractsSection(s: ContractValidationScenarioResult): string[] {
  const c = s.config;
  const lines: string[] = [`### ${s.name}`, '', s.description, ''];
  lines.push(
    '- *Same run, interleaved.* "Off" is Sage without `contracts`; "on" is the same work with them ' +
      '(`createContracts` / the module option, a 2-version contract of ' +
      `${String(c.schemaProperties)} properties: nested objects, \`uuid\` / \`email\` / \`date-time\` / \`uri\` ` +
      `formats, patterns; payloads of about ${int(Number(c.payloadBytes))} bytes of JSON). The ratio is on ÷ off: ` +
      'below 1 is what validation costs. After one unmeasured trial per side, trials alternate off, on, on, off.',
    `- *Outbox.* ${int(Number(c.outboxMessages))} messages written by \`OutboxPublisher.publish\` on PostgreSQL ` +
      `(${String(c.messagesPerTx)} per transaction, ${String(c.writers)} transactions in flight), ` +
      `${String(c.outboxRepetitions)} trials per side; on, every message is checked by \`checkOutgoing\` first.`,
    `- *Inbox.* ${int(Number(c.consumeMessages))} messages put on the in-memory broker and delivered through the ` +
      `inbox to an \`@IdempotentHandler\` (one inbox transaction each, ${String(c.consumeKeys)} keys in flight), ` +
      `${String(c.consumeRepetitions)} trials per side; on, \`contracts.consumes\` checks each before the handler.`,
    `- *Per message.* The checks alone, one at a time, ${int(s.check.messages)} each after a warm-up: ` +
      '`checkOutgoing` (publish), `checkIncoming` of a version-2 message, and of a version-1 message upcast to ' +
      'version 2 (checked, upcast, checked again).',
    '',
    '| part | on msg/s | off msg/s | ratio | median ratio of pairs (each pair) | checks alone, % of one core at the off rate |',
    '|---|---:|---:|---:|---:|---:|',
    row('outbox write (publish in transactions)', s.outbox),
    row('inbox delivery (@IdempotentHandler)', s.consume),
    '',
    'The last column is what the checks alone take of one core (their mean below × the off rate): where ' +
      "the work is bound by Node's one thread, the ratio cannot be expected above about 1 minus that share; " +
      'on a loaded machine single pairs scatter well beyond it.',
    '',
    '| check (µs per message) | p50 | p99 | mean |',
    '|---|---:|---:|---:|',
    `| checkOutgoing | ${us(s.check.outgoingUs)} |`,
    `| checkIncoming | ${us(s.check.incomingUs)} |`,
    `| checkIncoming + upcast v1 → v2 | ${us(s.check.incomingUpcastUs)} |`,
    '',
    `Checks that failed: ${s.check.refused} (expected 0).` +
      errorsOf(s.outbox.on, s.outbox.off) +
      errorsOf(s.consume.on, s.consume.off),
  );
  return lines;
}

/** The history line's figures, or null for another scenario. */
export function contractsHistoryCell(s: ScenarioResult): string | null {
  if (s.kind !== 'contract-validation') return null;
  return (
    `on ÷ off — outbox write ${ratio(s.outbox.ratio)} (median of pairs ${ratio(s.outbox.pairMedianRatio)}), ` +
    `inbox ${ratio(s.consume.ratio)} (${ratio(s.consume.pairMedianRatio)}); ` +
    `checkIncoming ${s.check.incomingUs.p50} µs/msg (upcast ${s.check.incomingUpcastUs.p50})`
  );
}
