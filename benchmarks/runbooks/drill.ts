/**
 * `npm run runbooks:drill [-- --quick]`: walks the relay-down, outbox dead-letter and inbox
 * dead-letter runbooks (docs/runbooks) end to end on real PostgreSQL and RabbitMQ with real
 * processes (scripts/services.sh start postgres rabbitmq), running each runbook's own `sage`
 * commands as the CLI and checking they show what the runbook says. Prints every step; exits 1 on
 * the first mismatch. `--quick` (CI): a small backlog, about a minute.
 */
import 'reflect-metadata';
import { loadavg } from 'node:os';
import { DrillMismatch, step } from './drill-report';
import { drillContext } from './drill-context';
import { relayDownDrill } from './relay-down.drill';
import { outboxDeadLettersDrill } from './outbox-dead-letters.drill';
import { inboxDeadLettersDrill } from './inbox-dead-letters.drill';

const SCENARIOS = {
  'relay-down': relayDownDrill,
  'outbox-dead-letters': outboxDeadLettersDrill,
  'inbox-dead-letters': inboxDeadLettersDrill,
} as const;

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== '--quick' && !(a.replace(/^--only=/, '') in SCENARIOS));
  if (unknown.length) {
    process.stderr.write(
      `runbooks:drill: unknown argument ${unknown.join(' ')}; use --quick and/or --only=${Object.keys(SCENARIOS).join('|')}\n`,
    );
    return 2;
  }
  const only = args.filter((a) => a.startsWith('--only=')).map((a) => a.slice(7));
  const ctx = drillContext(args.includes('--quick'));
  step(
    'drill',
    `run ${ctx.run}, load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  // The dead-letter scenarios run while relay-down waits out the dead relay's 30 s lease.
  const chosen = Object.entries(SCENARIOS).filter(([name]) => !only.length || only.includes(name));
  const results = await Promise.allSettled(chosen.map(([, drill]) => drill(ctx)));
  let failed = 0;
  for (const [i, result] of results.entries()) {
    if (result.status === 'fulfilled') {
      step('drill', `${chosen[i]![0]}: runbook matches`);
      continue;
    }
    failed++;
    const error = result.reason as Error;
    process.stderr.write(
      `${error instanceof DrillMismatch ? error.message : `[${chosen[i]![0]}] ERROR: ${error.stack ?? String(error)}`}\n`,
    );
  }
  step(
    'drill',
    failed
      ? `FAILED: ${failed} of ${chosen.length} runbooks`
      : `ok: ${chosen.length} runbooks walked`,
  );
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`runbooks:drill: ${String(error)}\n`);
    process.exit(1);
  },
);
