/**
 * Sage chaos at scale (issue 11): not part of `npm test`; CI runs it at a small size.
 *
 *   npm run chaos -- --messages 100000 --broker kafka
 *   npm run chaos -- --broker all --messages 2000 --rate 250 --fault-interval 2 --heavy-interval 4
 *   npm run chaos -- --docs-only        # regenerate the docs section from benchmarks/results
 *   npm run chaos -- --help
 *
 * Per broker: private servers (scripts/services.sh on its own directory and ports), service A
 * producing, standalone relays, service B consuming through the inbox, faults throughout, then
 * the checker (scenario.ts, checker.ts). Writes <out-dir>/chaos-<broker>.json and .md and the
 * "Chaos at scale" section of docs/benchmarks.md; exits 1 if any broker's run failed.
 */
import 'reflect-metadata';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseOptions, USAGE, type ChaosOptions } from './options';
import { killAllChildren } from './processes';
import {
  loadChaosResults,
  renderDocsSection,
  renderRun,
  resultFileBase,
  writeDocsSection,
} from './report';
import { runBrokerScenario, type ChaosResult } from './scenario';
import { PrivateServices, freePortBase } from './services';

const log = (line: string): void => console.log(line);

function updateDocs(options: ChaosOptions): void {
  if (!options.docs) return;
  const runs = loadChaosResults(options.outDir);
  writeDocsSection(options.docs, renderDocsSection(runs, options.outDir, options.docs));
  log(
    `docs: "Chaos at scale" in ${path.relative(process.cwd(), options.docs)} from ${runs.length} run(s)`,
  );
}

async function main(): Promise<number> {
  let options: ChaosOptions | 'help';
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    return 2;
  }
  if (options === 'help') {
    log(USAGE);
    return 0;
  }
  if (options.docsOnly) {
    updateDocs(options);
    return 0;
  }

  const runId = `${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}-${process.pid}`;
  const portBase = options.portBase ?? (await freePortBase(27_100));
  const services = new PrivateServices(path.join(options.servicesDir, runId), portBase);
  mkdirSync(services.dir, { recursive: true });
  mkdirSync(options.outDir, { recursive: true });
  log(
    `sage chaos: ${options.brokers.join(', ')} (${options.relayMode} relays), ${options.messages.toLocaleString('en-US')} messages each, seed ${options.seed}, ` +
      `deadline ${Math.round(options.deadlineMs / 1000)} s per broker; private servers in ${services.dir} on 127.0.0.1:${portBase}-${portBase + 7}`,
  );

  // The hard bound: whatever hangs, the command ends (children killed, servers stopped).
  const watchdog = setTimeout(
    () => {
      console.error('chaos: hard deadline passed; killing everything');
      void killAllChildren()
        .then(() => (options.keepServices ? undefined : services.destroy()))
        .finally(() => process.exit(1));
    },
    options.deadlineMs * options.brokers.length + 300_000,
  );
  watchdog.unref();
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => {
      console.error(`chaos: ${signal}; stopping everything`);
      void killAllChildren()
        .then(() => (options.keepServices ? undefined : services.destroy()))
        .finally(() => process.exit(130));
    });

  const results: ChaosResult[] = [];
  let crashed = false;
  try {
    for (const broker of options.brokers) {
      try {
        const result = await runBrokerScenario(broker, options, services, log);
        results.push(result);
        const base = path.join(options.outDir, resultFileBase(broker, options.relayMode));
        writeFileSync(`${base}.json`, `${JSON.stringify(result, null, 2)}\n`);
        writeFileSync(`${base}.md`, renderRun(result));
        const v = result.verdict;
        log(
          `[${broker}${options.relayMode === 'wal' ? ' wal' : ''}] ${v.ok ? 'PASS' : 'FAIL'}: ${v.produced.total} committed, ${v.effected} effected, lost ${v.lost}, ` +
            `duplicate effects ${v.duplicateEffects.messages}, reordered ${v.reordered}, ` +
            `redelivered before the inbox ${result.deliveries.redeliveries}, sagas not terminal ${v.sagas.nonTerminal}; ` +
            `${Math.round(result.throughput.producedPerSec)} msg/s produced, ${Math.round(result.throughput.effectedPerSec)} msg/s effected; ` +
            `${(result.wallMs / 1000).toFixed(0)} s → ${path.relative(process.cwd(), base)}.{json,md}`,
        );
        for (const f of v.failures) log(`[${broker}]   ${f}`);
      } catch (error) {
        crashed = true;
        console.error(
          `[${broker}] the run itself failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
        );
        await killAllChildren();
      }
    }
  } finally {
    await killAllChildren();
    if (options.keepServices) log(`private servers left running in ${services.dir}`);
    else await services.destroy();
    log(`logs: ${path.join(services.dir, 'logs')}`);
  }
  if (results.length) updateDocs(options);
  return crashed || results.some((r) => !r.verdict.ok) ? 1 : 0;
}

// A broker client can reject a promise nobody awaits while its server restarts; the run goes on
// (as benchmarks/run.ts does) and the checker judges the outcome.
process.on('unhandledRejection', (reason: unknown) => {
  console.error(
    `warning: unhandled rejection: ${reason instanceof Error ? reason.message : String(reason)}`,
  );
});

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exit(1);
  },
);
