/**
 * HTTP load of the sample stack (issue 18): not part of `npm test`; CI runs `--quick`.
 *
 *   npm run load:http                               # RabbitMQ, 60 s, 16 connections
 *   npm run load:http -- --quick                    # CI size (15 s of load, 8 connections)
 *   npm run load:http -- --broker kafka --rate 50   # open loop at 50 requests/s
 *   npm run load:http -- --docs-only                # regenerate the docs section only
 *
 * Starts the three sample services as separate processes on fresh databases (stack.ts), sends
 * `POST /orders` with autocannon (load.ts), waits for every saga to end and checks each against its
 * request (sagas.ts, verdict.ts), measures what it cost (usage.ts), writes
 * benchmarks/results/http-load-<broker>.json and the section of docs/benchmarks.md (report.ts).
 * Exits 1 when any check fails; every process it started is gone when it exits.
 */
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { writeDocsSection } from '../chaos/report';
import { ROOT, killAllChildren } from '../chaos/processes';
import { gitInfo, machineInfo } from '../harness/machine';
import { runLoad } from './load';
import { parseHttpLoadOptions, USAGE, type HttpLoadOptions } from './options';
import { HTTP_LOAD_MARKERS, loadHttpLoadResults, renderHttpLoadSection } from './report';
import { HTTP_LOAD_FORMAT, type HttpLoadResult } from './result';
import { collectOutcomes } from './sagas';
import { privateServers, sharedServers, type RunServers } from './servers';
import { SampleStack, SERVICE_NAMES, type ServiceName } from './stack';
import { UsageWindow } from './usage';
import { verdictOf } from './verdict';

const t0 = Date.now();
const say = (line: string): void =>
  console.log(`[http-load ${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}`);

/** Startup of three ts-node processes, stopping them and dropping databases: generous. */
const OVERHEAD_MS = 240_000;

function writeDocs(options: HttpLoadOptions): void {
  if (!options.docs) return;
  const dir = path.dirname(options.out);
  writeDocsSection(
    options.docs,
    renderHttpLoadSection(loadHttpLoadResults(dir), dir, options.docs),
    HTTP_LOAD_MARKERS,
  );
  say(`docs: ${path.relative(ROOT, options.docs)}`);
}

async function measure(
  options: HttpLoadOptions,
  stack: SampleStack,
  servers: RunServers,
): Promise<HttpLoadResult> {
  const startedAt = new Date().toISOString();
  const admin = new pg.Client({ ...stack.pg, application_name: 'sage-http-load-admin' });
  await admin.connect();
  const machine = await machineInfo(admin).finally(() => admin.end());

  await stack.start();
  const pids = new Map<ServiceName, number>(
    [...stack.services.values()].map((s) => [s.name, s.pid]),
  );
  const usage = await UsageWindow.start(stack.pg, pids, Object.values(stack.databases));
  say(
    `load: ${options.durationS} s, ${options.connections} connections${options.rate === null ? '' : `, ${options.rate} requests/s`}, every ${options.declineEvery}th card declined`,
  );
  const load = await runLoad(
    {
      url: stack.url('order-service'),
      runId: stack.runId,
      durationS: options.durationS,
      connections: options.connections,
      rate: options.rate,
      maxRequests: options.maxRequests,
      declineEvery: options.declineEvery,
      requestTimeoutS: options.requestTimeoutS,
    },
    say,
  );
  say(
    `load done: ${load.http.sent} sent, ${load.http.ok} accepted, ${load.http.non2xx} non-2xx, ${load.http.errors} errors; draining`,
  );
  const sagas = await collectOutcomes(stack, load.accepted, options.drainTimeoutS * 1000, say);
  const used = await usage.stop();
  const exitedEarly = [...stack.services.values()]
    .filter((s) => !s.handle.alive)
    .map((s) => `${s.name}: ${s.handle.recentOutput().split('\n').slice(-3).join(' | ')}`);
  return {
    format: HTTP_LOAD_FORMAT,
    broker: options.broker,
    startedAt,
    command: `npm run load:http -- ${options.argv.join(' ')}`.trim(),
    git: gitInfo(ROOT),
    machine,
    servers: servers.describe,
    settings: {
      durationS: options.durationS,
      connections: options.connections,
      rate: options.rate,
      maxRequests: options.maxRequests,
      declineEvery: options.declineEvery,
      drainTimeoutS: options.drainTimeoutS,
      requestTimeoutS: options.requestTimeoutS,
      logLevel: options.logLevel,
      quick: options.quick,
    },
    http: load.http,
    sagas,
    usage: used,
    exitedEarly,
    verdict: verdictOf(load.http, sagas, exitedEarly),
    logs: stack.logDir,
    wallMs: Date.now() - t0,
  };
}

function summary(r: HttpLoadResult): string[] {
  const o = r.sagas.orders;
  const h = r.http;
  const lines = [
    `HTTP: ${h.sent} sent, ${h.ok} 2xx, ${h.non2xx} non-2xx, ${h.errors} errors (${h.timeouts} timeouts); ${h.requestsPerSec.toFixed(1)} answers/s; latency p50 ${h.latencyMs.p50} ms, p99 ${h.latencyMs.p99} ms, max ${h.latencyMs.max} ms`,
    `order sagas: ${o.total} (${JSON.stringify(o.byStatus)}), ${o.asExpected} as expected, ${o.notTerminal} not terminal, ${o.missing} missing, ${o.unanswered} unanswered; ${o.perSec} sagas/s over ${o.spanS} s; completion p50 ${o.completionMs.p50} ms, p99 ${o.completionMs.p99} ms`,
    `shipments: ${r.sagas.shipments.completed}/${r.sagas.shipments.expected} completed; end to end p50 ${r.sagas.shipments.endToEndMs.p50} ms, p99 ${r.sagas.shipments.endToEndMs.p99} ms; dead letters ${JSON.stringify(r.sagas.deadLetters)}`,
  ];
  for (const name of SERVICE_NAMES) {
    const p = r.usage.services[name];
    if (p)
      lines.push(
        `${name} (pid ${p.pid}): ${p.cpuS} CPU s in the window (${p.cpuTotalS} since start), peak RSS ${p.peakRssMb} MB`,
      );
  }
  const u = r.usage;
  lines.push(
    `PostgreSQL: backends ${u.postgres.backendsCpuS} CPU s (${u.postgres.backendsSeen} backends), all postgres ${u.postgres.serverCpuS} s; broker server ${u.brokerServerCpuS} s; controller ${u.controller.cpuS} s; machine ${u.machineCpuPct}% of ${u.cores} cores over ${u.windowS} s`,
    `oldest transaction open on the PostgreSQL server during the window: ${u.oldestTransaction ? `${u.oldestTransaction.ageS} s (database ${u.oldestTransaction.database}, ${JSON.stringify(u.oldestTransaction.applicationName)}, ${u.oldestTransaction.state}: ${JSON.stringify(u.oldestTransaction.query)})` : 'none'}`,
    `load average: start ${u.loadAvg.atStart.join(' ')}, end ${u.loadAvg.atEnd.join(' ')}; 1 min mean ${u.loadAvg.oneMinute.mean}, max ${u.loadAvg.oneMinute.max}`,
    r.verdict.ok ? 'PASS' : `FAIL: ${r.verdict.failures.join('; ')}`,
  );
  return lines;
}

async function main(): Promise<number> {
  const options = parseHttpLoadOptions(process.argv.slice(2));
  if (!options) {
    console.log(USAGE);
    return 0;
  }
  if (options.docsOnly) {
    writeDocs(options);
    return 0;
  }
  const runId = randomBytes(4).toString('hex');
  let servers: RunServers | undefined;
  /** Every process the run started, gone: the services, then private servers if any. */
  const killEverything = (): Promise<unknown> =>
    Promise.allSettled([killAllChildren(), servers?.release()]);
  const hardDeadlineMs = (options.durationS + options.drainTimeoutS) * 1000 + OVERHEAD_MS;
  const watchdog = setTimeout(() => {
    console.error(`http-load: hard deadline (${hardDeadlineMs} ms) passed; killing everything`);
    void killEverything().finally(() => process.exit(1));
  }, hardDeadlineMs);
  watchdog.unref();
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => {
      console.error(`http-load: ${signal}; killing every process of the run`);
      void killEverything().finally(() => process.exit(1));
    });

  let result: HttpLoadResult;
  try {
    servers = options.privateServers
      ? await privateServers(options.broker, runId, say)
      : sharedServers(options.broker);
    const stack = new SampleStack(runId, options.broker, servers, options.logLevel, say);
    say(
      `broker ${options.broker} on ${servers.describe}; databases ${Object.values(stack.databases).join(', ')}; logs ${stack.logDir}`,
    );
    try {
      result = await measure(options, stack, servers);
    } finally {
      await stack.stop(options.keepDatabases && !options.privateServers).catch((error: unknown) => {
        console.error(`http-load: stopping the stack: ${String(error)}`);
      });
    }
  } finally {
    await killEverything();
  }
  mkdirSync(path.dirname(options.out), { recursive: true });
  writeFileSync(options.out, `${JSON.stringify(result, null, 2)}\n`);
  for (const line of summary(result)) say(line);
  say(`results: ${path.relative(ROOT, options.out)}`);
  writeDocs(options);
  clearTimeout(watchdog);
  return result.verdict.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    void killAllChildren().finally(() => process.exit(1));
  },
);
