/**
 * docs/runbooks/relay-down.md, walked for real: an app writing its outbox with its relay disabled,
 * one standalone relay (`sage-relay`, its own process) publishing to RabbitMQ, killed -9 while it
 * holds claims. Then the runbook's "Confirm" commands as written (`sage status`, the health curl;
 * the kubectl lines need a cluster and are checked against the chart by
 * test/docs/runbook-commands.spec.ts), its "What to do" (a relay running again) and its recovery
 * checks, and finally every message delivered once, in order per key.
 */
import type { INestApplicationContext } from '@nestjs/common';
import { createServer } from 'node:net';
import { startDrillApp, writeOutbox } from './drill-app';
import { createTestDatabase, withClient, type TestDatabase } from '../../test/support/pg';
import { startRelayProcess, type RelayProcess } from '../../test/support/relay-process';
import { commandsIn, type RunbookCommand } from '../../test/support/runbook-commands';
import { waitFor } from './wait-for';
import { DeliveryRecorder } from './delivery-recorder';
import { check, show, step } from './drill-report';
import { FreezableProxy } from './freezable-proxy';
import { fillIn, runLine } from './runbook-shell';
import { statusFigures, type StatusFigures } from './status-text';
import { databaseUrl, type DrillContext } from './drill-context';

const S = 'relay-down';
const RUNBOOK = 'relay-down.md';
const KEYS = 4;

export async function relayDownDrill(ctx: DrillContext): Promise<void> {
  const confirm = commandsIn(RUNBOOK, 'Confirm', 'sage');
  const curl = commandsIn(RUNBOOK, 'Confirm', 'curl')[0]!;
  const kubectl = commandsIn(RUNBOOK, 'Confirm', 'kubectl');
  const status = confirm.find((c) => c.text === 'sage status')!;
  check(S, status !== undefined, 'the runbook confirms with "sage status"');

  const db: TestDatabase = await createTestDatabase();
  const env = { DATABASE_URL: databaseUrl(db) };
  const recorder = new DeliveryRecorder(ctx.rabbitUrl, `sage.runbook-drill.${ctx.run}`, 'orders');
  const proxy = new FreezableProxy(ctx.rabbitAddress);
  const relays: RelayProcess[] = [];
  let app: INestApplicationContext | undefined;
  let writing = true;
  let writer: Promise<void> = Promise.resolve();
  const seq = Array.from({ length: KEYS }, () => 0);
  const written: string[] = [];
  const write = async (n: number) => {
    const messages = Array.from({ length: n }, (_, i) => {
      const key = `order-${(written.length + i) % KEYS}`;
      return { destination: 'orders', type: 'order.placed', key, payload: { key, seq: 0 } };
    });
    for (const m of messages) m.payload.seq = seq[Number(m.key.slice(6))]!++;
    written.push(...(await writeOutbox(app!, messages)));
  };
  try {
    step(S, 'order-service stand-in: SagaOutboxModule on its own database, its relay disabled');
    app = await startDrillApp({ db });
    await recorder.start();
    const proxyPort = await proxy.listen();
    const healthPort = await freePort();
    step(
      S,
      `standalone relay (sage-relay, pid below) → RabbitMQ through a proxy, health on :${healthPort}`,
    );
    const relay = startRelayProcess({
      ...env,
      SAGE_BROKER_URL: brokerUrl(ctx, proxyPort, recorder.exchange),
      HEALTH_PORT: String(healthPort),
    });
    relays.push(relay);
    step(S, `relay pid ${relay.child.pid}`);
    const health = (port: number) => fillIn(curl).replace(':9464', `:${port}`);
    await waitFor(
      async () => (await runLine(health(healthPort), env)).code === 0,
      'relay live',
      120_000,
      200,
    );
    const live = await runLine(health(healthPort), env);
    step(S, `$ ${live.line}`);
    show(live.stdout);
    check(S, /"status":"ok"/.test(live.stdout), '/health/live answers ok while the relay runs');

    await write(ctx.size.before);
    await waitFor(
      () => recorder.deliveries.length >= ctx.size.before,
      'first messages delivered',
      120_000,
      50,
    );
    await waitFor(
      async () => (await outboxCounts(db)).sent >= ctx.size.before,
      'marked sent',
      60_000,
      50,
    );
    step(
      S,
      `${ctx.size.before} messages published and delivered; now the broker link freezes mid-publish`,
    );

    proxy.freeze();
    await write(ctx.size.held);
    await waitFor(
      async () => (await outboxCounts(db)).claimed > 0,
      'relay holding claims',
      30_000,
      20,
    );
    const held = (await outboxCounts(db)).claimed;
    relay.child.kill('SIGKILL');
    await relay.exited;
    proxy.cut();
    step(S, `kill -9 ${relay.child.pid} while it held ${held} claims; the app keeps writing`);
    writer = (async () => {
      while (writing) {
        await write(1);
        await new Promise((r) => setTimeout(r, 150));
      }
    })();

    step(S, '## Confirm');
    for (const k of kubectl)
      step(
        S,
        `(not run: no Kubernetes here; checked against the chart by test/docs/runbook-commands.spec.ts) ${k.text}`,
      );
    const dead = await runLine(health(healthPort), env);
    step(S, `$ ${dead.line}  → exit ${dead.code}`);
    check(S, dead.code !== 0, '/health/live of the killed relay fails', `curl exit ${dead.code}`);
    const first = await sageStatus(status, env);
    check(
      S,
      first.claimed > 0,
      '"claimed" > 0: the dead relay\'s claims are still held',
      `claimed ${first.claimed}`,
    );
    // At least a second reading (the runbook says "growing"), then until the lease has expired.
    let last: StatusFigures;
    const deadline = Date.now() + 90_000;
    do {
      await new Promise((r) => setTimeout(r, 2000));
      last = await sageStatus(status, env);
    } while (last.leaseExpired === 0 && Date.now() < deadline);
    check(
      S,
      last.leaseExpired > 0,
      '"claimed (lease expired)" > 0 after the crash',
      `lease expired ${last.leaseExpired}`,
    );
    check(S, last.due > first.due, 'pending "due" growing', `${first.due} → ${last.due}`);
    check(
      S,
      last.oldestPendingSeconds > first.oldestPendingSeconds,
      'oldest pending rising',
      `${first.oldestPendingSeconds}s → ${last.oldestPendingSeconds}s`,
    );

    step(
      S,
      '## What to do: get a relay running (here: start sage-relay again, straight to RabbitMQ)',
    );
    writing = false;
    await writer;
    const healthPort2 = await freePort();
    const relay2 = startRelayProcess({
      ...env,
      SAGE_BROKER_URL: brokerUrl(ctx, ctx.rabbitAddress.port, recorder.exchange),
      HEALTH_PORT: String(healthPort2),
    });
    relays.push(relay2);
    await waitFor(
      async () => (await runLine(health(healthPort2), env)).code === 0,
      'new relay live',
      120_000,
      200,
    );
    step(S, `new relay pid ${relay2.child.pid} live`);
    const metrics = await (await fetch(`http://127.0.0.1:${healthPort2}/metrics`)).text();
    const running = metrics.match(/^outbox_relay_running(?:\{[^}]*\})? (\d+)/m);
    check(S, Number(running?.[1] ?? 0) >= 1, 'outbox_relay_running ≥ 1', running?.[0] ?? 'absent');

    step(S, 'recovery: "sage status" until due is 0 and no claim is left');
    let now = await sageStatus(status, env);
    const recoverBy = Date.now() + 120_000;
    while ((now.due > 0 || now.claimed > 0 || now.pending > 0) && Date.now() < recoverBy) {
      await new Promise((r) => setTimeout(r, 1000));
      now = await sageStatus(status, env);
    }
    check(
      S,
      now.due === 0 && now.pending === 0,
      '"due" fell to 0',
      `pending ${now.pending}, due ${now.due}`,
    );
    check(
      S,
      now.claimed === 0 && now.leaseExpired === 0,
      '"claimed (lease expired)" back to 0 (reaped)',
      `claimed ${now.claimed}`,
    );

    await waitFor(
      () => recorder.deliveries.length >= written.length,
      'every message delivered',
      60_000,
      50,
    );
    await new Promise((r) => setTimeout(r, 500)); // any duplicate would arrive now
    const counts = recorder.counts();
    const missing = written.filter((id) => !counts.has(id));
    const twice = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
    check(
      S,
      missing.length === 0,
      `all ${written.length} messages delivered`,
      missing.length ? `missing ${missing.length}` : '',
    );
    check(
      S,
      twice.length === 0,
      'each delivered once',
      twice.length ? `${twice.length} twice` : '',
    );
    const outOfOrder = Array.from({ length: KEYS }, (_, k) => `order-${k}`).filter((key) => {
      const seqs = recorder.deliveries
        .filter((d) => d.payload.key === key)
        .map((d) => d.payload.seq!);
      return seqs.some((s, i) => s !== i);
    });
    check(S, outOfOrder.length === 0, 'in order per key', outOfOrder.join(', '));
  } finally {
    writing = false;
    await writer.catch(() => undefined);
    await Promise.all(relays.map((r) => r.kill()));
    await app?.close().catch(() => undefined);
    await proxy.close().catch(() => undefined);
    await recorder.close();
    await db.drop();
  }
}

async function sageStatus(command: RunbookCommand, env: NodeJS.ProcessEnv): Promise<StatusFigures> {
  const run = await runLine(fillIn(command), env);
  const figures = statusFigures(run.stdout);
  step(
    S,
    `$ ${run.line}  → pending ${figures.pending} (due ${figures.due}), claimed ${figures.claimed} (lease expired ${figures.leaseExpired}), oldest pending ${figures.oldestPendingSeconds}s`,
  );
  check(S, run.code === 0, '"sage status" exits 0', run.stderr.trim());
  return figures;
}

function brokerUrl(ctx: DrillContext, port: number, exchange: string): string {
  const url = new URL(ctx.rabbitUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  url.searchParams.set('exchange', exchange);
  return url.toString();
}

function outboxCounts(db: TestDatabase): Promise<{ sent: number; claimed: number }> {
  return withClient(db.name, async (client) => {
    const { rows } = await client.query<{ sent: number; claimed: number }>(
      `SELECT count(*) FILTER (WHERE status = 'sent')::int AS sent,
              count(*) FILTER (WHERE status = 'claimed')::int AS claimed
         FROM sage.outbox_message`,
    );
    return rows[0]!;
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
