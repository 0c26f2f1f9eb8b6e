import { EXIT_FAILURE, UsageError } from '../cli-errors';
import { expectArgs, intOption, stringOption, type CommandSpec } from '../command';
import { cell, json, relative, table } from '../format';
import type { InboxEntry } from '../../core/ports/inbox-store';
import { CHANGE_OPTIONS, changeMode, confirmationRequired, count } from '../confirm-change';
import { LIMIT } from './shared-options';
import { OPERATOR } from '../operator';

export const inboxListCommand: CommandSpec = {
  path: ['inbox', 'dead-letters', 'list'],
  summary: 'messages a consumer gave up on (after its max attempts), with the error',
  options: {
    consumer: { type: 'string', value: 'C', description: 'only this consumer (handler name)' },
    limit: LIMIT(50),
  },
  details: `The broker has acknowledged these: they are kept here, with the delivered message, until released.

Examples:
  sage inbox dead-letters list --consumer payments.order-placed
  sage inbox dead-letters list --json | jq '.entries[] | {consumer, messageId, lastError}'`,
  async run(ctx) {
    expectArgs(ctx, []);
    const consumer = stringOption(ctx, 'consumer');
    const limit = intOption(ctx, 'limit', 50, { min: 1, max: 1000 });
    const db = await ctx.db();
    const [now, page] = await Promise.all([
      db.operator.databaseNow(),
      db.inbox.listDeadLetters({ consumer }, limit),
    ]);
    if (ctx.json) {
      ctx.io.out(json(page));
      return;
    }
    if (!page.entries.length) {
      ctx.io.out('no inbox dead letters match\n');
      return;
    }
    ctx.io.out(deadLetterTable(page.entries, now));
    if (page.nextCursor) ctx.io.out(`(first ${limit}; raise --limit or narrow with --consumer)\n`);
  },
};

export const inboxReleaseCommand: CommandSpec = {
  path: ['inbox', 'dead-letters', 'release'],
  summary:
    "forget a consumer's dead letters so the next delivery of those messages is handled again (needs --yes)",
  arguments: '<messageId>...',
  options: {
    consumer: {
      type: 'string',
      value: 'C',
      description: 'the consumer whose dead letters to release (required)',
    },
    ...CHANGE_OPTIONS,
    operator: OPERATOR,
  },
  details: `Deploy the handler fix first. Releasing deletes the dead letter, which holds the only copy
of the delivered message, and does not redeliver: the broker acknowledged these messages when they
were dead-lettered. Save them first (sage inbox dead-letters list --json). After releasing, get
them delivered again: replay the topic (Kafka offsets), shovel the dead-letter queue (RabbitMQ), or
have the producer publish them again with the same message id. Only dead letters are deleted,
whatever ids are given. Without --yes nothing changes: the dead letters that would be released are
listed and the command exits 2.

Example:
  sage inbox dead-letters release --consumer payments.order-placed 0193a1e2-7c4b-7f00-8a1b-2f6c1d0e9a11 --dry-run
  sage inbox dead-letters release --consumer payments.order-placed 0193a1e2-7c4b-7f00-8a1b-2f6c1d0e9a11 --yes`,
  async run(ctx) {
    const mode = changeMode(ctx);
    const consumer = stringOption(ctx, 'consumer');
    if (!consumer) throw new UsageError('--consumer is required');
    if (!ctx.args.length) throw new UsageError('give the message ids to release');
    const ids = [...new Set(ctx.args)];
    const db = await ctx.db();
    if (mode !== 'apply') {
      const [now, entries] = await Promise.all([
        db.operator.databaseNow(),
        Promise.all(ids.map((messageId) => db.inbox.get({ consumer, messageId }))),
      ]);
      const dead = entries.filter((e): e is InboxEntry => e?.status === 'dead_letter');
      const notFound = ids.filter((id) => !dead.some((e) => e.messageId === id));
      if (ctx.json)
        ctx.io.out(
          json({ dryRun: true, consumer, wouldRelease: dead.map((e) => e.messageId), notFound }),
        );
      else
        ctx.io.out(
          (dead.length ? deadLetterTable(dead, now) : '') +
            `dry run: would release ${count(dead.length, 'dead letter')} of ${consumer}; nothing changed\n` +
            notFoundLines(consumer, notFound),
        );
      if (mode === 'unconfirmed' && dead.length)
        throw confirmationRequired(
          `delete ${count(dead.length, 'inbox dead letter')} of ${consumer} (the only copy of each delivered message)`,
        );
      return notFound.length ? EXIT_FAILURE : undefined;
    }
    const released = await db.inbox.deleteDeadLetters(consumer, ids);
    const notFound = ids.filter((id) => !released.includes(id));
    ctx.io.out(
      ctx.json
        ? json({ consumer, released, notFound })
        : released.map((id) => `released ${id}\n`).join('') + notFoundLines(consumer, notFound),
    );
    return notFound.length ? EXIT_FAILURE : undefined;
  },
};

const notFoundLines = (consumer: string, ids: readonly string[]): string =>
  ids.map((id) => `not a dead letter of ${consumer}: ${id}\n`).join('');

function deadLetterTable(entries: readonly InboxEntry[], now: Date): string {
  return table(
    ['CONSUMER', 'MESSAGE ID', 'ATTEMPTS', 'DEAD-LETTERED', 'LAST ERROR'],
    entries.map((e) => [
      cell(e.consumer, 40),
      e.messageId,
      String(e.attempts),
      relative(e.processedAt, now),
      cell(e.lastError, 70),
    ]),
    { right: [2] },
  );
}
