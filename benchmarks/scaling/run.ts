/**
 * `npm run bench:scaling`: what scales how, measured with 1, 2 and 4 separate worker processes on
 * real PostgreSQL and real brokers (scripts/services.sh; `eval "$(bash scripts/services.sh env
 * postgres rabbitmq nats kafka)"` first). Scenarios: relay-rounds.ts (a), consumer-rounds.ts (b),
 * saga-rounds.ts (c); flags in options.ts. Writes benchmarks/results/scaling.json and rewrites the
 * generated section of docs/scaling.md from it. Exits 1 when a round failed or a check did not
 * hold (the numbers are still written).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { killAllChildren } from '../chaos/processes';
import { brokerTargets } from '../harness/brokers';
import {
  clientConfig,
  pgTargetFromEnv,
  prepareDatabase,
  sagaDataSource,
} from '../harness/database';
import { machineInfo } from '../harness/machine';
import { consumerRounds } from './consumer-rounds';
import { Fleet, LOG_DIR } from './fleet';
import { parseScalingOptions } from './options';
import { relayRounds } from './relay-rounds';
import { replaceGeneratedSection, renderScalingSection, withSpeedups } from './report';
import { SCALING_SCHEMA_VERSION, type ScalingPoint, type ScalingResults } from './results';
import { sagaRounds } from './saga-rounds';
import { createScalingTables } from './scaling-tables';

const log = (line: string): void => void process.stdout.write(`${line}\n`);

async function main(): Promise<number> {
  const options = parseScalingOptions(process.argv.slice(2));
  const target = {
    ...pgTargetFromEnv(),
    database: process.env.SAGE_BENCH_SCALING_DATABASE ?? 'sage_bench_scaling',
  };
  const runId = `scale${Date.now().toString(36)}`;
  const configured = new Set(brokerTargets(runId).targets.map((t) => t.kind));
  const brokers = options.brokers.filter((b) => configured.has(b));
  for (const b of options.brokers.filter((b) => !configured.has(b)))
    log(`${b}: skipped (not configured: run eval "$(bash scripts/services.sh env ${b})")`);
  const startedAt = new Date().toISOString();
  log(
    `bench:scaling ${options.quick ? '(quick) ' : ''}on ${os.cpus().length} cores; worker logs in ${LOG_DIR}`,
  );

  await prepareDatabase(target);
  const admin = new pg.Client(clientConfig(target, 'sage-bench-scaling-admin'));
  const monitor = new pg.Client(clientConfig(target, 'sage-bench-scaling-monitor'));
  await admin.connect();
  await monitor.connect();
  const controllerDs = sagaDataSource(target, 2, 'sage-bench-scaling-admin');
  await controllerDs.initialize();
  const points: ScalingPoint[] = [];
  const failures: string[] = [];
  let machine: Awaited<ReturnType<typeof machineInfo>>;
  try {
    await createScalingTables(admin);
    machine = await machineInfo(admin);
    const maxProcesses = Math.max(...options.processCounts);
    const scenarios = options.scenarios.filter((s) => s === 'saga' || brokers.length);
    for (const scenario of scenarios) {
      // One fleet at a time: starting them all at once on a busy 2-core box only makes each start slower.
      log(`${scenario}: starting ${maxProcesses} worker processes`);
      let fleet: Fleet;
      try {
        fleet = await Fleet.start(scenario, maxProcesses, target, options.poolSize);
      } catch (error) {
        const text = String(error instanceof Error ? error.message : error).split('\n')[0]!;
        failures.push(`${scenario}: the worker processes did not start: ${text}`);
        log(`  ${failures.at(-1)}`);
        continue;
      }
      try {
        const common = { fleet, admin, monitor, processCounts: options.processCounts, log };
        if (scenario === 'saga')
          points.push(...(await sagaRounds({ ...common, controllerDs, sagas: options.sagas })));
        else
          for (const broker of brokers)
            points.push(
              ...(scenario === 'relay'
                ? await relayRounds({ ...common, runId, broker, messages: options.relayMessages })
                : await consumerRounds({
                    ...common,
                    runId,
                    broker,
                    messages: options.consumerMessages,
                  })),
            );
      } finally {
        await fleet.close();
      }
    }
  } finally {
    await controllerDs.destroy();
    await admin.end();
    await monitor.end();
  }

  const results: ScalingResults = {
    schemaVersion: SCALING_SCHEMA_VERSION,
    startedAt,
    finishedAt: new Date().toISOString(),
    quick: options.quick,
    machine: {
      cpuModel: machine.cpuModel,
      cores: machine.cores,
      ramGb: machine.ramGb,
      node: machine.node,
      postgres: machine.postgres,
      loadAvg1mAtStart: machine.loadAvg1mAtStart,
      loadAvg1mAtEnd: Math.round((os.loadavg()[0] ?? 0) * 100) / 100,
    },
    settings: {
      processCounts: options.processCounts,
      relayMessages: options.relayMessages,
      consumerMessages: options.consumerMessages,
      sagas: options.sagas,
      poolSize: options.poolSize,
      brokers,
    },
    points: withSpeedups(points),
    failures,
  };
  mkdirSync(path.dirname(options.out), { recursive: true });
  writeFileSync(options.out, `${JSON.stringify(results, null, 2)}\n`);
  log(`results: ${path.relative(process.cwd(), options.out)}`);
  if (existsSync(options.doc)) {
    const doc = readFileSync(options.doc, 'utf8');
    writeFileSync(options.doc, replaceGeneratedSection(doc, renderScalingSection(results)));
    log(`tables: ${path.relative(process.cwd(), options.doc)}`);
  }
  const bad = results.points.filter((p) => p.error || !p.checks.ok);
  for (const p of bad)
    log(
      `NOT OK: ${p.scenario} ${p.broker ?? ''} ×${p.processes}: ${p.error ?? p.checks.problems.join('; ')}`,
    );
  for (const f of failures) log(`NOT OK: ${f}`);
  return bad.length || failures.length ? 1 : 0;
}

process.once('SIGINT', () => void killAllChildren().then(() => process.exit(130)));
main()
  .then((code) => process.exit(code))
  .catch(async (error: unknown) => {
    process.stderr.write(`${String(error instanceof Error ? error.stack : error)}\n`);
    await killAllChildren();
    process.exit(1);
  });
