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
import { brokerTargets } from './harness/brokers';
import { gitInfo, machineInfo, sampleLoad } from './harness/machine';
import { writePlots } from './harness/plots';
import { installQueryCounter } from './harness/query-counter';
import { loadResults, renderReport, selectSections } from './harness/report';
import {
  RESULTS_FORMAT,
  type Profile,
  type ProfileName,
  type RunResult,
  type ScenarioResult,
} from './harness/results';
import { SCENARIOS } from './scenarios';
import { loadChaosResults, renderDocsSection, writeDocsSection } from './chaos/report';
import { HTTP_LOAD_MARKERS, loadHttpLoadResults, renderHttpLoadSection } from './http-load/report';

const ROOT = path.resolve(__dirname, '..');
const RESULTS_DIR = path.join(__dirname, 'results');
const DOCS_FILE = path.join(ROOT, 'docs', 'benchmarks.md');
const PLOTS_DIR = path.join(ROOT, 'docs', 'benchmarks');

/**
 * quick: a smoke run, about four minutes. default: the published numbers, about ten minutes on a
 * 2-core machine (the outbox figures vary with how fast that machine drains):
 * - saga-local-3step: 3 concurrency points × 2 systems × (3 s warm-up + 10 s + 1 s) ≈ 1.5 minutes;
 * - outbox-relay-throughput: 2 relay counts × 2 systems × 3 drains of 50,000 messages ≈ 1.2 minutes;
 * - outbox-commit-to-publish: 2 modes × 2 systems × 2 slices of (1 s warm-up + 5 s) ≈ 1 minute;
 * - outbox-retention: 30 s each with retention, with retention + VACUUM, without ≈ 1.7 minutes;
 * - outbox-broker-throughput: 3 brokers × 3 worker counts × (2 relay + 2 raw + 1 raw-relay-loop
 *   drains of 20,000 messages) ≈ 2 minutes;
 * - outbox-wal-relay-throughput: 3 brokers × 2 × (polling relay, WAL relay, raw client drains of
 *   20,000 messages) ≈ 2.5 minutes (quick: 5,000 messages, one drain each, ≈ 0.5 minute);
 * - outbox-backlog-scaling: 1, 2, 4 relays × (5 drains of 1,000 + one of 100,000) ≈ 3 minutes
 *   (quick: 3 × 1,000 and 10,000 ≈ 0.5 minute);
 * - outbox-commit-to-ack: (3 brokers at 1,000 msg/s + 100 and 5,000 on one) × 5 variants (polling
 *   relay, WAL relay, optimistic, raw relay loop, raw client) × 2 slices of (1 s + 3 s), each slice
 *   with its reset and settle ≈ 7 minutes (quick: + 100 only, one slice ≈ 3.5 minutes);
 * - peer-pg-transactional-outbox: 2,000-message drains and 6 s at 100 msg/s for Sage and the peer's
 *   polling and logical-replication listeners ≈ 1.5 minutes.
 * - data-protection-cost: 3 concurrency points × 2 sides (encryption on / off) × (3 s + 6 s + 1 s),
 *   then 2 × 2 write + drain trials of 10,000 messages ≈ 1.5 minutes (quick: 2 points, 2,000 messages).
 * - contract-validation-cost: 2 × (1 + 4) publish trials of 10,000 messages, 2 × (1 + 4) inbox
 *   trials of 5,000 deliveries (one warm-up each), then 20,000 checks of each kind ≈ 1 minute
 *   (quick: 2,000 / 2,000 / 5,000).
 * - consumer-throughput: 3 brokers × 2 × (inbox + raw + adapter-alone drains of 10,000 pre-loaded
 *   messages, each after a group join) ≈ 2 minutes (quick: 2,000 messages, one drain each).
 * soak: default plus the soak scenario (30 minutes by default).
 */
const PROFILES: Record<Exclude<ProfileName, 'soak'>, Profile> = {
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
    brokers: {
      drainMessages: 5_000,
      drainRepetitions: 1,
      workerCounts: [1, 2, 4],
      rawRelayDrains: true,
      perBrokerRate: 1_000,
      matrixBroker: 'kafka',
      matrixRates: [100, 1_000],
      latencyDurationMs: 3_000,
      latencySlices: 1,
      latencyWarmupMs: 500,
      soakDurationMs: 0,
      soakRatePerSec: 1_000,
      soakSampleEveryMs: 1_000,
    },
    protection: {
      sagaConcurrency: [1, 16],
      sagaDurationMs: 3_000,
      outboxMessages: 2_000,
      outboxRepetitions: 2,
      openMessages: 2_000,
    },
    contracts: {
      outboxMessages: 2_000,
      outboxRepetitions: 4,
      consumeMessages: 2_000,
      consumeRepetitions: 4,
      checkMessages: 5_000,
    },
    consumers: { messages: 2_000, repetitions: 1 },
    relayModes: {
      drainMessages: 5_000,
      drainRepetitions: 1,
      backlogLarge: 10_000,
      backlogSmall: 1_000,
      backlogRelayCounts: [1, 2, 4],
      backlogSmallRepetitions: 3,
    },
  },
  default: {
    name: 'default',
    warmupMs: 3_000,
    durationMs: 10_000,
    slices: 2,
    sliceWarmupMs: 1_000,
    concurrency: [1, 16, 64],
    calibrationSagas: 50,
    outbox: {
      drainMessages: 50_000,
      drainRepetitions: 3,
      relayCounts: [1, 2],
      latencyRatePerSec: 1_000,
      latencyDurationMs: 10_000,
      latencySlices: 2,
      latencyWarmupMs: 1_000,
      retentionRatePerSec: 2_000,
      retentionMessagesPerTx: 4,
      retentionDurationMs: 30_000,
      retentionMs: 5_000,
      retentionIntervalMs: 1_000,
      retentionVacuumEveryMs: 10_000,
    },
    brokers: {
      drainMessages: 20_000,
      drainRepetitions: 2,
      workerCounts: [1, 2, 4],
      rawRelayDrains: true,
      perBrokerRate: 1_000,
      matrixBroker: 'kafka',
      matrixRates: [100, 1_000, 5_000],
      latencyDurationMs: 6_000,
      latencySlices: 2,
      latencyWarmupMs: 1_000,
      soakDurationMs: 0,
      soakRatePerSec: 1_000,
      soakSampleEveryMs: 5_000,
    },
    protection: {
      sagaConcurrency: [1, 16, 64],
      sagaDurationMs: 6_000,
      outboxMessages: 10_000,
      outboxRepetitions: 2,
      openMessages: 10_000,
    },
    contracts: {
      outboxMessages: 10_000,
      outboxRepetitions: 4,
      consumeMessages: 5_000,
      consumeRepetitions: 4,
      checkMessages: 20_000,
    },
    consumers: { messages: 10_000, repetitions: 2 },
    relayModes: {
      drainMessages: 20_000,
      drainRepetitions: 2,
      backlogLarge: 100_000,
      backlogSmall: 1_000,
      backlogRelayCounts: [1, 2, 4],
      backlogSmallRepetitions: 5,
    },
  },
};

/** soak: the default profile plus a long run at a steady rate (RSS and latency over time). */
const SOAK: Profile = {
  ...PROFILES.default,
  name: 'soak',
  brokers: {
    ...PROFILES.default.brokers!,
    soakDurationMs: 30 * 60_000,
    soakRatePerSec: 1_000,
    soakSampleEveryMs: 10_000,
  },
};

const USAGE = `Usage: npm run bench -- [options]
  --profile quick|default|soak  durations and points (default: default); soak adds a 30-minute
                              run at 1,000 msg/s (--soak-minutes N to change; --scenario soak alone)
  --brokers kafka,rabbitmq,nats  real brokers to measure (default: every one configured by
                              SAGE_KAFKA_BROKERS, SAGE_RABBITMQ_URL, SAGE_NATS_URL)
  --scenario NAME[,NAME]      run these scenarios only (${SCENARIOS.map((s) => s.name).join(', ')})
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

async function writeDocs(): Promise<void> {
  const runs = loadResults(RESULTS_DIR);
  mkdirSync(path.dirname(DOCS_FILE), { recursive: true });
  const plots = await writePlots(
    selectSections(runs).sections.map((x) => x.scenario),
    PLOTS_DIR,
  );
  writeFileSync(DOCS_FILE, renderReport(runs, plots));
  // The chaos runs keep their own section (between its markers), rebuilt from their results.
  writeDocsSection(
    DOCS_FILE,
    renderDocsSection(loadChaosResults(RESULTS_DIR), RESULTS_DIR, DOCS_FILE),
  );
  // So does the HTTP load of the sample stack (benchmarks/http-load).
  writeDocsSection(
    DOCS_FILE,
    renderHttpLoadSection(loadHttpLoadResults(RESULTS_DIR), RESULTS_DIR, DOCS_FILE),
    HTTP_LOAD_MARKERS,
  );
  console.log(
    `docs: ${path.relative(ROOT, DOCS_FILE)} from ${runs.length} results file(s), ${plots.size} plot(s) in ${path.relative(ROOT, PLOTS_DIR)}/`,
  );
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
      brokers: { type: 'string' },
      'soak-minutes': { type: 'string' },
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
    await writeDocs();
    return;
  }

  const base =
    values.profile === 'soak' ? SOAK : PROFILES[values.profile as Exclude<ProfileName, 'soak'>];
  if (!base)
    throw new Error(
      `--profile must be quick, default or soak, got ${JSON.stringify(values.profile)}`,
    );
  if (values.brokers) process.env.SAGE_BENCH_BROKERS = values.brokers;
  const soakMinutes = positiveInt('soak-minutes', values['soak-minutes']);
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
    brokers: {
      ...base.brokers!,
      soakDurationMs:
        soakMinutes !== undefined ? soakMinutes * 60_000 : base.brokers!.soakDurationMs,
    },
  };
  if (
    values.scenario?.split(',').some((name) => name.trim() === 'soak') &&
    profile.brokers!.soakDurationMs === 0
  )
    throw new Error('the soak needs a length: --profile soak, or --soak-minutes N');
  if (!Number.isInteger(profile.warmupMs) || profile.warmupMs < 0)
    throw new Error('--warmup-ms must be an integer >= 0');
  const poolSize = positiveInt('pool-size', values['pool-size']) ?? 10;
  const maxConcurrentSagas = positiveInt('max-concurrent-sagas', values['max-concurrent-sagas']);
  const wanted = values.scenario?.split(',').map((name) => name.trim());
  const scenarios = wanted
    ? SCENARIOS.filter((s) => wanted.includes(s.name))
    : SCENARIOS.filter((s) => s.enabled?.(profile) ?? true);
  if (!scenarios.length || (wanted && scenarios.length < new Set(wanted).size)) {
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

  machine.brokers = Object.fromEntries(
    brokerTargets('info').targets.map((t) => [t.kind, `${t.client} → ${t.address}`]),
  );
  const stopLoad = sampleLoad();
  installQueryCounter();
  await prepareDatabase(target);

  const results: ScenarioResult[] = [];
  for (const scenario of scenarios) {
    console.log(`${scenario.name}:`);
    const scenarioStart = Date.now();
    results.push(
      await scenario.run({
        target,
        profile,
        poolSize,
        maxConcurrentSagas,
        log: (line) => console.log(line),
      }),
    );
    console.log(`  (${scenario.name}: ${((Date.now() - scenarioStart) / 1000).toFixed(0)} s)`);
  }

  machine.loadAvg1m = stopLoad();
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
  if (!values['no-docs']) await writeDocs();
}

// A broker client can reject a promise nobody awaits when its server goes away mid-run (the shared
// servers are restarted by other people's chaos tests). The scenario that used it fails on its own
// deadline and says so; the run goes on instead of dying with the rejection.
let strayRejections = 0;
process.on('unhandledRejection', (reason: unknown) => {
  strayRejections++;
  console.error(
    `warning: unhandled rejection #${strayRejections} (a broker client lost its server?): ${
      reason instanceof Error ? reason.message : String(reason)
    }`,
  );
});

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
