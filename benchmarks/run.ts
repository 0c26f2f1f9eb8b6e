/**
 * Sage benchmark harness (DESIGN.md §7).
 *
 *   npm run bench                                  # default profile, every scenario
 *   npm run bench -- --profile quick               # a short smoke run
 *   npm run bench -- --scenario saga-local-3step --concurrency 1,16 --duration-ms 5000
 *   npm run bench -- --docs-only                   # regenerate docs/benchmarks.md only
 *
 * Drops and recreates the `sage_bench` database (PGHOST/PGPORT/PGUSER/PGPASSWORD, defaults from
 * scripts/services.sh; SAGE_BENCH_DATABASE renames it), runs the scenarios, writes
 * benchmarks/results/<timestamp>.json and regenerates docs/benchmarks.md from every results file.
 */
import 'reflect-metadata';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { clientConfig, pgTargetFromEnv, prepareDatabase } from './harness/database';
import { gitInfo, machineInfo } from './harness/machine';
import { installQueryCounter } from './harness/query-counter';
import { loadResults, renderReport } from './harness/report';
import {
  RESULTS_FORMAT,
  type Profile,
  type ProfileName,
  type RunResult,
  type ScenarioResult,
} from './harness/results';
import { SCENARIOS } from './scenarios';

const ROOT = path.resolve(__dirname, '..');
const RESULTS_DIR = path.join(__dirname, 'results');
const DOCS_FILE = path.join(ROOT, 'docs', 'benchmarks.md');

/**
 * quick: a smoke run, well under two minutes. default: the published numbers, about nine minutes on
 * a 2-core machine (the outbox figures vary with how fast that machine drains):
 * - saga-local-3step: per concurrency point each system gets `durationMs` measured in `slices`
 *   alternating slices (engine, raw, raw, engine...): 3 × 2 × (3 s + 20 s + 3 × 1 s) ≈ 3 minutes;
 * - outbox-relay-throughput: 2 relay counts × 2 systems × 5 drains of 50,000 messages ≈ 2 minutes;
 * - outbox-commit-to-publish: 2 modes × 2 systems × 4 slices of (1 s warm-up + 5 s) ≈ 2 minutes;
 * - outbox-retention: 60 s each with retention, with retention + VACUUM, without ≈ 3.3 minutes.
 */
const PROFILES: Record<ProfileName, Profile> = {
  quick: {
    name: 'quick',
    warmupMs: 1_000,
    durationMs: 3_000,
    slices: 1,
    sliceWarmupMs: 500,
    concurrency: [1, 16, 64],
    calibrationSagas: 20,
    outbox: {
      drainMessages: 10_000,
      drainRepetitions: 1,
      relayCounts: [1, 2],
      latencyRatePerSec: 1_000,
      latencyDurationMs: 5_000,
      latencySlices: 1,
      latencyWarmupMs: 1_000,
      retentionRatePerSec: 2_000,
      retentionMessagesPerTx: 4,
      retentionDurationMs: 10_000,
      retentionMs: 5_000,
      retentionIntervalMs: 1_000,
      retentionVacuumEveryMs: 3_000,
    },
  },
  default: {
    name: 'default',
    warmupMs: 3_000,
    durationMs: 20_000,
    slices: 4,
    sliceWarmupMs: 1_000,
    concurrency: [1, 16, 64],
    calibrationSagas: 50,
    outbox: {
      drainMessages: 50_000,
      drainRepetitions: 5,
      relayCounts: [1, 2],
      latencyRatePerSec: 1_000,
      latencyDurationMs: 20_000,
      latencySlices: 4,
      latencyWarmupMs: 1_000,
      retentionRatePerSec: 2_000,
      retentionMessagesPerTx: 4,
      retentionDurationMs: 60_000,
      retentionMs: 5_000,
      retentionIntervalMs: 1_000,
      retentionVacuumEveryMs: 10_000,
    },
  },
};

const USAGE = `Usage: npm run bench -- [options]
  --profile quick|default     durations and points (default: default)
  --scenario NAME             run one scenario (${SCENARIOS.map((s) => s.name).join(', ')})
  --concurrency 1,16,64       override the concurrency points
  --warmup-ms N               override the warm-up per point
  --duration-ms N             saga scenarios: measured time per system and point;
                              outbox-commit-to-publish: per system and mode
  --slices N                  split it into N alternating engine/raw slices
  --pool-size N               connections for the engine's DataSource and the raw Pool (default 10)
  --max-concurrent-sagas N    override the engine's maxConcurrentSagas
  --messages N                outbox-relay-throughput: messages pre-loaded per drain
  --rate N                    outbox-commit-to-publish: commits (= messages) per second
  --retention-duration-ms N   outbox-retention: length of each of its two runs
  --out FILE                  results file (default benchmarks/results/<timestamp>.json)
  --no-docs                   do not regenerate docs/benchmarks.md
  --docs-only                 only regenerate docs/benchmarks.md from benchmarks/results/
  --help`;

function positiveInt(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

function writeDocs(): void {
  const runs = loadResults(RESULTS_DIR);
  mkdirSync(path.dirname(DOCS_FILE), { recursive: true });
  writeFileSync(DOCS_FILE, renderReport(runs));
  console.log(`docs: ${path.relative(ROOT, DOCS_FILE)} from ${runs.length} results file(s)`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      profile: { type: 'string', default: 'default' },
      scenario: { type: 'string' },
      concurrency: { type: 'string' },
      'warmup-ms': { type: 'string' },
      'duration-ms': { type: 'string' },
      slices: { type: 'string' },
      'pool-size': { type: 'string' },
      'max-concurrent-sagas': { type: 'string' },
      messages: { type: 'string' },
      rate: { type: 'string' },
      'retention-duration-ms': { type: 'string' },
      out: { type: 'string' },
      'no-docs': { type: 'boolean', default: false },
      'docs-only': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (values['docs-only']) {
    writeDocs();
    return;
  }

  const base = PROFILES[values.profile as ProfileName];
  if (!base)
    throw new Error(`--profile must be quick or default, got ${JSON.stringify(values.profile)}`);
  const profile: Profile = {
    ...base,
    warmupMs: values['warmup-ms'] !== undefined ? Number(values['warmup-ms']) : base.warmupMs,
    durationMs: positiveInt('duration-ms', values['duration-ms']) ?? base.durationMs,
    slices: positiveInt('slices', values.slices) ?? base.slices,
    concurrency: values.concurrency
      ? values.concurrency.split(',').map((c) => positiveInt('concurrency', c.trim())!)
      : base.concurrency,
    outbox: {
      ...base.outbox!,
      drainMessages: positiveInt('messages', values.messages) ?? base.outbox!.drainMessages,
      latencyRatePerSec: positiveInt('rate', values.rate) ?? base.outbox!.latencyRatePerSec,
      latencyDurationMs:
        positiveInt('duration-ms', values['duration-ms']) ?? base.outbox!.latencyDurationMs,
      retentionDurationMs:
        positiveInt('retention-duration-ms', values['retention-duration-ms']) ??
        base.outbox!.retentionDurationMs,
    },
  };
  if (!Number.isInteger(profile.warmupMs) || profile.warmupMs < 0)
    throw new Error('--warmup-ms must be an integer >= 0');
  const poolSize = positiveInt('pool-size', values['pool-size']) ?? 10;
  const maxConcurrentSagas = positiveInt('max-concurrent-sagas', values['max-concurrent-sagas']);
  const scenarios = values.scenario
    ? SCENARIOS.filter((s) => s.name === values.scenario)
    : SCENARIOS;
  if (!scenarios.length) {
    throw new Error(
      `unknown scenario ${JSON.stringify(values.scenario)}; known: ${SCENARIOS.map((s) => s.name).join(', ')}`,
    );
  }

  const startedAt = new Date();
  const out = path.resolve(
    values.out ??
      path.join(RESULTS_DIR, `${startedAt.toISOString().slice(0, 19).replace(/:/g, '-')}Z.json`),
  );
  const target = pgTargetFromEnv();
  const admin = new pg.Client(clientConfig(target, 'sage-bench-admin', target.adminDatabase));
  await admin.connect();
  const machine = await machineInfo(admin).finally(() => admin.end());
  const git = gitInfo(ROOT);
  console.log(
    `sage bench: profile ${profile.name}, ${machine.cpuModel} × ${machine.cores}, Node ${machine.node}, PostgreSQL ${machine.postgres}, ` +
      `load ${machine.loadAvg1mAtStart}, pool ${poolSize}, database ${target.database}`,
  );

  installQueryCounter();
  await prepareDatabase(target);

  const results: ScenarioResult[] = [];
  for (const scenario of scenarios) {
    console.log(`${scenario.name}:`);
    results.push(
      await scenario.run({
        target,
        profile,
        poolSize,
        maxConcurrentSagas,
        log: (line) => console.log(line),
      }),
    );
  }

  const run: RunResult = {
    format: RESULTS_FORMAT,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    profile,
    git,
    machine,
    scenarios: results,
  };
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(run, null, 2)}\n`);
  console.log(
    `results: ${path.relative(ROOT, out)} (${((Date.now() - startedAt.getTime()) / 1000).toFixed(0)} s)`,
  );
  if (!values['no-docs']) writeDocs();
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
