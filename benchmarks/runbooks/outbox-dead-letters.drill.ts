/**
 * docs/runbooks/outbox-dead-letters.md, walked for real: an app whose relay publishes to a
 * RabbitMQ destination no queue is bound to yet (unroutable, reported non-retryable), so its
 * messages dead-letter: the runbook's cause 2. Then its "Confirm" commands as written, the fix
 * (the destination's queue exists), its replays (one with `--operator`, then a dry run and the
 * bulk replay), its discard, and the results: each replayed message delivered once, the discarded
 * one never, dead letters back to 0, an audit entry per change naming its operator.
 */
import type { INestApplicationContext } from '@nestjs/common';
import { userInfo } from 'node:os';
import { RabbitMqBroker } from '../../libs/saga-outbox/src/brokers/rabbitmq/rabbitmq-broker';
import { startDrillApp, writeOutbox } from './drill-app';
import { createTestDatabase, type TestDatabase } from '../../test/support/pg';
import { commandsIn, type RunbookCommand } from '../../test/support/runbook-commands';
import { waitFor } from './wait-for';
import { DeliveryRecorder } from './delivery-recorder';
import { check, show, step } from './drill-report';
import { fillIn, runLine, type ShellRun } from './runbook-shell';
import { statusFigures } from './status-text';
import { auditEntries } from './audit-entries';
import { databaseUrl, type DrillContext } from './drill-context';

const S = 'outbox-dead-letters';
const RUNBOOK = 'outbox-dead-letters.md';
const OPERATOR = 'drill-operator';

export async function outboxDeadLettersDrill(ctx: DrillContext): Promise<void> {
  const [status, list, listJson, show1] = commandsIn(RUNBOOK, 'Confirm');
  const todo = commandsIn(RUNBOOK, 'What to do');
  const replayOne = find(todo, (c) => c.text.includes('replay <messageId>'));
  const dryRun = find(
    todo,
    (c) => c.text.includes('--all-matching') && c.text.includes('--dry-run'),
  );
  const replayAll = find(
    todo,
    (c) => c.text.includes('--all-matching') && c.text.includes('--yes'),
  );
  const confirmStatus = find(todo, (c) => c.text === 'sage status');
  const discard = find(todo, (c) => c.text.includes('discard'));

  const db: TestDatabase = await createTestDatabase();
  const env = { DATABASE_URL: databaseUrl(db), SAGE_OPERATOR: '' };
  const exchange = `sage.runbook-drill.${ctx.run}.odl`;
  const broker = new RabbitMqBroker({ url: ctx.rabbitUrl, exchange, unroutableRetryable: false });
  const recorder = new DeliveryRecorder(ctx.rabbitUrl, exchange, 'payments');
  let app: INestApplicationContext | undefined;
  const run = async (command: RunbookCommand, values: Record<string, string> = {}) => {
    const result = await runLine(fillIn(command, values), env);
    step(S, `$ ${result.line}  → exit ${result.code}`);
    show(result.stdout + result.stderr);
    return result;
  };
  try {
    step(
      S,
      'an app whose relay publishes to "payments", which no queue is bound to (unroutable: non-retryable)',
    );
    app = await startDrillApp({ db, broker });
    const requested = await writeOutbox(
      app,
      ['p-1', 'p-1', 'p-2'].map((key, seq) => ({
        destination: 'payments',
        type: 'payment.requested',
        key,
        payload: { key, seq },
      })),
    );
    const [cancelled] = await writeOutbox(app, [
      {
        destination: 'payments',
        type: 'payment.cancelled',
        key: 'p-3',
        payload: { key: 'p-3', seq: 0 },
      },
    ]);
    const all = [...requested, cancelled!];
    const firstStatus = async () => statusFigures((await runLine(fillIn(status!), env)).stdout);
    await waitFor(
      async () => (await firstStatus()).outboxDeadLetters === all.length,
      '4 dead letters',
      120_000,
      500,
    );

    step(S, '## Confirm');
    const s1 = await run(status!);
    check(S, statusFigures(s1.stdout).outboxDeadLetters === 4, '"sage status": 4 dead letters');
    check(
      S,
      /payments/.test(s1.stdout) && /unroutable/.test(s1.stdout),
      'by destination, with the newest error',
    );
    const l = await run(list!);
    check(
      S,
      all.every((id) => l.stdout.includes(id)) && /unroutable/.test(l.stdout),
      'list: every dead letter, LAST ERROR',
    );
    const ids = await run(listJson!);
    const listed = ids.stdout.trim().split('\n').sort();
    check(
      S,
      ids.code === 0 && same(listed, requested),
      'the --json | jq filter prints the 3 payment.requested ids',
    );
    const one = await run(show1!, { messageId: requested[0]! });
    check(
      S,
      /dead_letter/.test(one.stdout) && /unroutable/.test(one.stdout),
      'show: status and last error',
    );

    step(S, '## What to do: fix the cause (a queue bound to "payments"), then replay');
    await recorder.start();
    expectOk(
      await run(replayOne, { messageId: requested[0]!, you: OPERATOR }),
      `replayed ${requested[0]}`,
    );
    await waitFor(
      () => recorder.counts().has(requested[0]!),
      'the replayed message delivered',
      60_000,
      50,
    );
    check(S, true, 'the one replayed message is delivered');
    const preview = await run(dryRun);
    expectOk(preview, 'dry run: would replay 2 dead letters');
    expectOk(await run(replayAll), 'replayed 2 dead letters');
    await waitFor(
      () => requested.every((id) => recorder.counts().has(id)),
      'replays delivered',
      60_000,
      50,
    );
    const after = statusFigures((await run(confirmStatus)).stdout);
    check(
      S,
      after.outboxDeadLetters === 1,
      'status: dead letters falling (4 → 1: the one to discard)',
      String(after.outboxDeadLetters),
    );

    await run(show1!, { messageId: cancelled! });
    expectOk(await run(discard, { messageId: cancelled! }), `discarded ${cancelled}`);
    const end = statusFigures((await run(confirmStatus)).stdout);
    check(
      S,
      end.outboxDeadLetters === 0 && end.pending === 0,
      'status: no dead letter, nothing pending',
    );

    await new Promise((r) => setTimeout(r, 500)); // a duplicate would arrive now
    const counts = recorder.counts();
    check(
      S,
      requested.every((id) => counts.get(id) === 1),
      'each replayed message delivered once',
    );
    check(S, !counts.has(cancelled!), 'the discarded message never delivered');
    const audit = await auditEntries(db, all);
    const os = safeUser();
    const want = [
      `outbox.replayed ${requested[0]} ${OPERATOR}`,
      ...requested.slice(1).map((id) => `outbox.replayed ${id} ${os}`),
      `outbox.discarded ${cancelled} ${os}`,
    ];
    const got = audit
      .filter((a) => a.action !== 'outbox.dead_lettered')
      .map((a) => `${a.action} ${a.targetId} ${a.actor}`);
    check(
      S,
      same(got, want),
      'an audit entry per change, naming the operator (--operator, else the OS user)',
      got.join('; '),
    );
  } finally {
    await app?.close().catch(() => undefined);
    await broker.close().catch(() => undefined);
    await recorder.close();
    await db.drop();
  }
}

function find(commands: RunbookCommand[], test: (c: RunbookCommand) => boolean): RunbookCommand {
  const found = commands.find(test);
  if (!found) throw new Error(`${RUNBOOK}: a command the drill walks is gone from "What to do"`);
  return found;
}

function expectOk(run: ShellRun, says: string): void {
  check(S, run.code === 0 && run.stdout.includes(says), `exit 0, "${says}"`, run.stderr.trim());
}

const same = (a: readonly string[], b: readonly string[]) =>
  JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());

function safeUser(): string {
  return userInfo().username;
}
