import { EXIT_FAILURE, UsageError } from '../cli-errors';
import { expectArgs, intOption, stringOption, type CommandSpec } from '../command';
import { cell, json, relative, table } from '../format';
import { LIMIT } from './shared-options';

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
    ctx.io.out(
      table(
        ['CONSUMER', 'MESSAGE ID', 'ATTEMPTS', 'DEAD-LETTERED', 'LAST ERROR'],
        page.entries.map((e) => [
          cell(e.consumer, 40),
          e.messageId,
          String(e.attempts),
          relative(e.processedAt, now),
          cell(e.lastError, 70),
        ]),
        { right: [2] },
      ),
    );
    if (page.nextCursor) ctx.io.out(`(first ${limit}; raise --limit or narrow with --consumer)\n`);
  },
};

export const inboxReleaseCommand: CommandSpec = {
  path: ['inbox', 'dead-letters', 'release'],
  summary:
    "forget a consumer's dead letters so the next delivery of those messages is handled again",
  arguments: '<messageId>...',
  options: {
    consumer: {
      type: 'string',
      value: 'C',
      description: 'the consumer whose dead letters to release (required)',
    },
  },
  details: `Deploy the handler fix first. Releasing does not redeliver: the broker acknowledged these
messages when they were dead-lettered. After releasing, get them delivered again: replay the topic
(Kafka offsets), shovel the dead-letter queue (RabbitMQ), or have the producer publish them again
with the same message id. Only dead letters are deleted, whatever ids are given.

Example:
  sage inbox dead-letters release --consumer payments.order-placed 0193a1e2-7c4b-7f00-8a1b-2f6c1d0e9a11`,
  async run(ctx) {
    const consumer = stringOption(ctx, 'consumer');
    if (!consumer) throw new UsageError('--consumer is required');
    if (!ctx.args.length) throw new UsageError('give the message ids to release');
    const ids = [...new Set(ctx.args)];
    const released = await (await ctx.db()).inbox.deleteDeadLetters(consumer, ids);
    const notFound = ids.filter((id) => !released.includes(id));
    ctx.io.out(
      ctx.json
        ? json({ consumer, released, notFound })
        : released.map((id) => `released ${id}\n`).join('') +
            notFound.map((id) => `not a dead letter of ${consumer}: ${id}\n`).join(''),
    );
    return notFound.length ? EXIT_FAILURE : undefined;
  },
};
