/**
 * docs/runbooks/inbox-dead-letters.md, walked for real: a consumer (`@IdempotentHandler`, consumer
 * `payments.order-placed`, on RabbitMQ) whose handler fails on one message until it is fixed, so
 * the inbox dead-letters it. Then the runbook's "Confirm" commands as written, the fix, its
 * release (dry run, then `--yes --operator`), and "get them delivered again" the way it says for
 * any broker: the producer publishes the saved message again with the same id. Checks: the
 * message handled exactly once after that, the other messages once each, the release audited
 * with its operator.
 */
import { randomBytes } from 'node:crypto';
import { Injectable, type INestApplicationContext } from '@nestjs/common';
import { RabbitMqBroker } from '../../libs/saga-outbox/src/brokers/rabbitmq/rabbitmq-broker';
import type { DeliveredMessage } from '../../libs/saga-outbox/src/core/ports/broker';
import {
  IdempotentHandler,
  type InboxContext,
} from '../../libs/saga-outbox/src/nest/inbox/idempotent-handler.decorator';
import { createEffectTable, handled, insertEffect, startDrillApp, writeOutbox } from './drill-app';
import { createTestDatabase, type TestDatabase } from '../../test/support/pg';
import { commandsIn, type RunbookCommand } from '../../test/support/runbook-commands';
import { waitFor } from './wait-for';
import { check, show, step } from './drill-report';
import { fillIn, runLine } from './runbook-shell';
import { auditEntries } from './audit-entries';
import { deleteRabbitMqObjects } from './rabbitmq-cleanup';
import { databaseUrl, type DrillContext } from './drill-context';

const S = 'inbox-dead-letters';
const RUNBOOK = 'inbox-dead-letters.md';
const CONSUMER = 'payments.order-placed';
const OPERATOR = 'drill-operator';
/** Per run: the consumer's queue (`<consumer>.<destination>`) is then the run's own. */
const DESTINATION = `orders.${randomBytes(4).toString('hex')}`;
const QUEUE = `${CONSUMER}.${DESTINATION}`;

/** The handler's bug, switched off by "deploying the fix". */
const bug = { on: true };

@Injectable()
class PaymentsConsumer {
  @IdempotentHandler(DESTINATION, { consumer: CONSUMER, maxAttempts: 2 })
  async onOrderPlaced(
    message: DeliveredMessage,
    { manager, messageId }: InboxContext,
  ): Promise<void> {
    const payload = message.payload as { key: string; seq: number; total: number | null };
    if (bug.on && payload.total === null)
      throw new Error(`total is null for order ${payload.key}: cannot charge`);
    await insertEffect(manager, CONSUMER, messageId);
  }
}

export async function inboxDeadLettersDrill(ctx: DrillContext): Promise<void> {
  const [status, list, listJson] = commandsIn(RUNBOOK, 'Confirm');
  const todo = commandsIn(RUNBOOK, 'What to do');
  const dryRun = todo.find((c) => c.text.includes('release') && c.text.includes('--dry-run'));
  const release = todo.find((c) => c.text.includes('release') && c.text.includes('--yes'));
  if (!dryRun || !release)
    throw new Error(`${RUNBOOK}: the release commands are gone from "What to do"`);

  const db: TestDatabase = await createTestDatabase();
  await createEffectTable(db);
  const env = { DATABASE_URL: databaseUrl(db), SAGE_OPERATOR: '' };
  const exchange = `sage.runbook-drill.${ctx.run}.idl`;
  const broker = new RabbitMqBroker({ url: ctx.rabbitUrl, exchange, redeliveryDelayMs: 50 });
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
      `a consumer ${CONSUMER} on RabbitMQ whose handler fails on a null total (maxAttempts 2)`,
    );
    app = await startDrillApp({ db, broker, providers: [PaymentsConsumer] });
    const [good1, poison, good2] = await writeOutbox(
      app,
      [10, null, 30].map((total, seq) => ({
        destination: DESTINATION,
        type: 'order.placed',
        key: `o-${seq}`,
        payload: { key: `o-${seq}`, seq, total },
      })),
    );
    await waitFor(
      async () => (await handled(db, CONSUMER)).length === 2,
      'the good messages handled',
      120_000,
      100,
    );
    const deadLetters = async () => (await runLine(fillIn(listJson!), env)).stdout;
    await waitFor(
      async () => (await deadLetters()).includes(poison!),
      'the poison message dead-lettered',
      120_000,
      500,
    );

    step(S, '## Confirm');
    const s = await run(status!);
    check(
      S,
      /INBOX/.test(s.stdout) && s.stdout.includes(CONSUMER),
      '"sage status": INBOX dead letters of the consumer',
    );
    const l = await run(list!);
    check(
      S,
      l.stdout.includes(poison!) && /total is null/.test(l.stdout),
      'list: message id, LAST ERROR',
    );
    const j = await run(listJson!);
    const saved = JSON.parse(j.stdout) as {
      messageId: string;
      lastError: string;
      message: DeliveredMessage;
    };
    check(
      S,
      saved.messageId === poison && saved.message?.id === poison,
      'list --json | jq: the delivered message kept',
    );

    step(S, '## What to do: deploy the fix, release, publish again with the same id');
    bug.on = false;
    const preview = await run(dryRun, { messageId: poison! });
    check(
      S,
      preview.code === 0 && preview.stdout.includes(`would release 1 dead letter of ${CONSUMER}`),
      'dry run: would release 1, nothing changed',
    );
    const released = await run(release, { messageId: poison!, you: OPERATOR });
    check(
      S,
      released.code === 0 && released.stdout.includes(`released ${poison}`),
      `exit 0, "released ${poison}"`,
    );
    const m = saved.message;
    const [sent] = await broker.publish([
      {
        id: m.id,
        destination: m.destination,
        key: m.key,
        type: m.type,
        payload: m.payload,
        headers: m.headers,
        time: new Date(m.time),
      },
    ]);
    check(S, sent?.ok === true, 'the saved message published again with its id');
    await waitFor(
      async () => (await handled(db, CONSUMER)).length === 3,
      'the released message handled',
      60_000,
      100,
    );
    await new Promise((r) => setTimeout(r, 500));
    const ids = await handled(db, CONSUMER);
    check(
      S,
      JSON.stringify([...ids].sort()) === JSON.stringify([good1, poison, good2].sort()),
      'each message handled once',
      ids.join(', '),
    );
    const after = await run(list!);
    check(
      S,
      after.stdout.includes('no inbox dead letters match'),
      'the dead letter does not come back',
    );
    const audit = (await auditEntries(db, [`${CONSUMER}/${poison}`])).filter(
      (a) => a.action === 'inbox.released',
    );
    check(
      S,
      audit.length === 1 && audit[0]!.actor === OPERATOR,
      `the release audited as ${OPERATOR}`,
      JSON.stringify(audit),
    );
  } finally {
    await app?.close().catch(() => undefined);
    await broker.close().catch(() => undefined);
    await deleteRabbitMqObjects(ctx.rabbitUrl, {
      queues: [QUEUE, `${QUEUE}.dlq`],
      exchanges: [exchange, `${exchange}.dlx`],
    });
    await db.drop();
  }
}
