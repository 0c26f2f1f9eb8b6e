import { OutboxMessageNotFoundError } from '../../core/outbox/outbox-errors';
import type { OutboxMessage } from '../../core/outbox/outbox-message';
import { CommandFailedError, EXIT_FAILURE, EXIT_OK, UsageError } from '../cli-errors';
import {
  dateOption,
  expectArgs,
  flag,
  intOption,
  stringOption,
  uuidArgument,
  type CommandContext,
  type CommandSpec,
  type OptionSpec,
} from '../command';
import { cell, fields, isoOrDash, json, relative, table } from '../format';
import type { SageConnection } from '../connection';
import {
  CHANGE_OPTIONS,
  changeMode,
  confirmationRequired,
  count,
  type ChangeMode,
} from '../confirm-change';
import { LIMIT } from './shared-options';
import { OPERATOR } from '../operator';

const FILTERS: Record<string, OptionSpec> = {
  destination: {
    type: 'string',
    value: 'D',
    description: 'only messages to this destination (topic / exchange / subject)',
  },
  type: { type: 'string', value: 'T', description: 'only messages of this type' },
  key: { type: 'string', value: 'K', description: 'only messages with this ordering key' },
  saga: { type: 'string', value: 'ID', description: 'only messages written by this saga' },
  'created-before': {
    type: 'string',
    value: 'TIME',
    description: 'only messages written before this ISO 8601 time',
  },
};

/** The DeadLetterFilter the library takes, from the filter options (only those given). */
function readFilter(ctx: CommandContext) {
  const saga = stringOption(ctx, 'saga');
  const filter = {
    destination: stringOption(ctx, 'destination'),
    type: stringOption(ctx, 'type'),
    key: stringOption(ctx, 'key'),
    sagaId: saga === undefined ? undefined : uuidArgument(saga, '--saga'),
    createdBefore: dateOption(ctx, 'created-before'),
  };
  return Object.fromEntries(Object.entries(filter).filter(([, v]) => v !== undefined)) as Partial<
    typeof filter
  >;
}

export const outboxShowCommand: CommandSpec = {
  path: ['outbox', 'show'],
  summary: 'one outbox message (any status): headers, payload, attempts, last error',
  arguments: '<id>',
  options: {},
  details: `Example:
  sage outbox show 0193a1e2-7c4b-7f00-8a1b-2f6c1d0e9a11 --json | jq .message.payload`,
  async run(ctx) {
    const [raw] = expectArgs(ctx, ['<id>']);
    const id = uuidArgument(raw!, 'the message id');
    const db = await ctx.db();
    const [now, message] = await Promise.all([
      db.operator.databaseNow(),
      db.deadLetters.inspect(id).catch(notFound),
    ]);
    if (ctx.json) {
      ctx.io.out(json({ message }));
      return;
    }
    ctx.io.out(
      fields([
        ['message', message.id],
        ['status', message.status],
        ['destination', message.destination],
        ['type', message.type],
        ['key', message.key ?? '-'],
        ['saga', message.sagaId ?? '-'],
        ['attempts', String(message.attempts)],
        ['created', `${message.createdAt.toISOString()} (${relative(message.createdAt, now)})`],
        [
          'next attempt',
          message.status === 'pending'
            ? `${isoOrDash(message.nextAttemptAt)} (${relative(message.nextAttemptAt, now)})`
            : '-',
        ],
        [
          'sent',
          message.sentAt
            ? `${message.sentAt.toISOString()} (${relative(message.sentAt, now)})`
            : '-',
        ],
        ['last error', message.lastError ?? '-'],
      ]) +
        `headers: ${JSON.stringify(message.headers, null, 2)}\n` +
        `payload: ${JSON.stringify(message.payload, null, 2)}\n`,
    );
  },
};

export const deadLettersListCommand: CommandSpec = {
  path: ['outbox', 'dead-letters', 'list'],
  summary: 'dead-lettered outbox messages, oldest first, by destination / type / key / saga',
  options: {
    ...FILTERS,
    limit: LIMIT(50),
    after: {
      type: 'string',
      value: 'ID',
      description: 'the next page: the cursor the previous page printed',
    },
  },
  details: `Examples:
  sage outbox dead-letters list --destination payments --limit 20
  sage outbox dead-letters list --json | jq -r '.messages[].id'`,
  async run(ctx) {
    expectArgs(ctx, []);
    const filter = readFilter(ctx);
    const limit = intOption(ctx, 'limit', 50, { min: 1, max: 1000 });
    const after = stringOption(ctx, 'after');
    const db = await ctx.db();
    const [now, page] = await Promise.all([
      db.operator.databaseNow(),
      db.deadLetters.list(filter, { limit, after: after && uuidArgument(after, '--after') }),
    ]);
    if (ctx.json) {
      ctx.io.out(json(page));
      return;
    }
    if (!page.messages.length) {
      ctx.io.out('no dead letters match\n');
      return;
    }
    ctx.io.out(messageTable(page.messages, now));
    if (page.nextCursor) ctx.io.out(`more: add --after ${page.nextCursor}\n`);
  },
};

export const deadLettersReplayCommand: CommandSpec = {
  path: ['outbox', 'dead-letters', 'replay'],
  summary:
    'put dead letters back to pending (attempts reset) so the relay publishes them again (needs --yes)',
  arguments: '[<id>...]',
  options: {
    'all-matching': {
      type: 'boolean',
      description: 'replay every dead letter matching the filters (no ids)',
    },
    ...FILTERS,
    limit: {
      type: 'string',
      value: 'N',
      description: 'with --all-matching: at most N messages, 1-1000 (default 1000)',
    },
    ...CHANGE_OPTIONS,
    operator: OPERATOR,
  },
  details: `Fix the cause first (consumer, broker, payload): a message replayed into the same failure
dead-letters again after its attempts. A replayed message keeps its place in its key's order.
Consumers deduplicate by message id (the inbox), so a replay of an already-delivered message is
harmless to them. Without --yes nothing changes: the messages that would be replayed are listed
and the command exits 2.

Examples:
  sage outbox dead-letters replay 0193a1e2-7c4b-7f00-8a1b-2f6c1d0e9a11 --yes
  sage outbox dead-letters replay --all-matching --destination payments --type payment.requested --dry-run
  sage outbox dead-letters replay --all-matching --destination payments --type payment.requested --yes`,
  async run(ctx) {
    const mode = changeMode(ctx);
    if (!flag(ctx, 'all-matching')) {
      for (const name of ['limit', ...Object.keys(FILTERS)])
        if (ctx.options[name] !== undefined)
          throw new UsageError(`--${name} only goes with --all-matching`);
      if (!ctx.args.length)
        throw new UsageError(
          'give the ids of the dead letters to replay, or --all-matching with filters',
        );
      const ids = ctx.args.map((a) => uuidArgument(a, 'a message id'));
      const conn = await ctx.db();
      if (mode !== 'apply') return previewByIds(ctx, conn, ids, mode, 'replay');
      const replayed: string[] = [];
      const notFound: string[] = [];
      for (const id of ids) {
        try {
          await conn.deadLetters.replay(id);
          replayed.push(id);
        } catch (error) {
          if (!(error instanceof OutboxMessageNotFoundError)) throw error;
          notFound.push(id);
        }
      }
      ctx.io.out(
        ctx.json
          ? json({ replayed, notFound })
          : replayed.map((id) => `replayed ${id}\n`).join('') + notFoundLines(notFound),
      );
      return notFound.length ? EXIT_FAILURE : EXIT_OK;
    }
    if (ctx.args.length) throw new UsageError('give either ids or --all-matching, not both');
    const filter = readFilter(ctx);
    const limit = intOption(ctx, 'limit', 1000, { min: 1, max: 1000 });
    const conn = await ctx.db();
    if (mode !== 'apply') {
      const [now, page] = await Promise.all([
        conn.operator.databaseNow(),
        conn.deadLetters.list(filter, { limit }),
      ]);
      const n = page.messages.length;
      const more = page.nextCursor !== null;
      const everything =
        Object.keys(filter).length === 0 ? ' (every dead letter: no filter given)' : '';
      if (ctx.json)
        ctx.io.out(json({ dryRun: true, wouldReplay: page.messages.map((m) => m.id), more }));
      else
        ctx.io.out(
          n
            ? messageTable(page.messages, now) +
                `dry run: would replay ${count(n, 'dead letter')}${more ? ` (the first ${limit}; more match)` : ''}${everything}; nothing changed\n`
            : 'dry run: no dead letters match; nothing changed\n',
        );
      if (mode === 'dry-run' || n === 0) return EXIT_OK;
      throw confirmationRequired(`replay ${count(n, 'dead letter')}${everything}`);
    }
    const replayed = await conn.deadLetters.replayMatching(filter, { limit });
    ctx.io.out(
      ctx.json
        ? json({ replayed })
        : `replayed ${count(replayed.length, 'dead letter')}${replayed.length === limit ? ` (the limit: run again for more)` : ''}\n`,
    );
    return EXIT_OK;
  },
};

export const deadLettersDiscardCommand: CommandSpec = {
  path: ['outbox', 'dead-letters', 'discard'],
  summary: 'delete dead letters for good (only by id; needs --yes)',
  arguments: '<id>...',
  options: {
    ...CHANGE_OPTIONS,
    yes: { type: 'boolean', description: 'confirm: the messages are deleted and never published' },
    operator: OPERATOR,
  },
  details: `Only for messages that must never be delivered (e.g. an event about an entity since deleted).
Check with "sage outbox show <id>" first. The rest of the message's key is not affected. Without
--yes nothing changes: the messages that would be deleted are listed and the command exits 2.

Example:
  sage outbox dead-letters discard 0193a1e2-7c4b-7f00-8a1b-2f6c1d0e9a11 --dry-run
  sage outbox dead-letters discard 0193a1e2-7c4b-7f00-8a1b-2f6c1d0e9a11 --yes`,
  async run(ctx) {
    const mode = changeMode(ctx);
    if (!ctx.args.length) throw new UsageError('give the ids of the dead letters to discard');
    const ids = ctx.args.map((a) => uuidArgument(a, 'a message id'));
    const conn = await ctx.db();
    if (mode !== 'apply') return previewByIds(ctx, conn, ids, mode, 'discard');
    const discarded: string[] = [];
    const notFound: string[] = [];
    for (const id of ids) {
      try {
        await conn.deadLetters.discard(id);
        discarded.push(id);
      } catch (error) {
        if (!(error instanceof OutboxMessageNotFoundError)) throw error;
        notFound.push(id);
      }
    }
    ctx.io.out(
      ctx.json
        ? json({ discarded, notFound })
        : discarded.map((id) => `discarded ${id}\n`).join('') + notFoundLines(notFound),
    );
    return notFound.length ? EXIT_FAILURE : undefined;
  },
};

const notFoundLines = (ids: readonly string[]): string =>
  ids.map((id) => `not a dead letter (not found, or not dead-lettered): ${id}\n`).join('');

/**
 * What replay / discard by id would do, changing nothing: the ids that are dead letters (shown
 * as a table) and those that are not. Exit as the change would (1 when an id is not a dead
 * letter); without --yes, the error naming --yes.
 */
async function previewByIds(
  ctx: CommandContext,
  conn: SageConnection,
  ids: readonly string[],
  mode: Exclude<ChangeMode, 'apply'>,
  verb: 'replay' | 'discard',
): Promise<number> {
  const unique = [...new Set(ids)];
  const [now, found] = await Promise.all([
    conn.operator.databaseNow(),
    Promise.all(unique.map((id) => conn.outbox.get(id))),
  ]);
  const dead = found.filter((m): m is OutboxMessage => m?.status === 'dead_letter');
  const notFound = unique.filter((id) => !dead.some((m) => m.id === id));
  if (ctx.json)
    ctx.io.out(
      json({
        dryRun: true,
        [verb === 'replay' ? 'wouldReplay' : 'wouldDiscard']: dead.map((m) => m.id),
        notFound,
      }),
    );
  else
    ctx.io.out(
      (dead.length ? messageTable(dead, now) : '') +
        `dry run: would ${verb} ${count(dead.length, 'dead letter')}; nothing changed\n` +
        notFoundLines(notFound),
    );
  if (mode === 'unconfirmed' && dead.length)
    throw confirmationRequired(
      `${verb === 'discard' ? 'delete' : 'replay'} ${count(dead.length, 'dead letter')}${verb === 'discard' ? ' for good' : ''}`,
    );
  return notFound.length ? EXIT_FAILURE : EXIT_OK;
}

function messageTable(messages: readonly OutboxMessage[], now: Date): string {
  return table(
    ['ID', 'DESTINATION', 'TYPE', 'KEY', 'ATTEMPTS', 'CREATED', 'LAST ERROR'],
    messages.map((m) => [
      m.id,
      cell(m.destination, 30),
      cell(m.type, 30),
      cell(m.key, 24),
      String(m.attempts),
      relative(m.createdAt, now),
      cell(m.lastError, 60),
    ]),
    { right: [4] },
  );
}

function notFound(error: unknown): never {
  if (error instanceof OutboxMessageNotFoundError) throw new CommandFailedError(error.message);
  throw error;
}
