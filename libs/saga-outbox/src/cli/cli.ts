import { InvalidOptionsError, SagaOutboxError } from '../core/errors';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CommandFailedError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError } from './cli-errors';
import type { CommandContext, CommandSpec, OptionSpec, OptionValues } from './command';
import { asyncapiCommand } from './commands/asyncapi.command';
import { auditSealCommand, auditVerifyCommand } from './commands/audit.command';
import { contractsCheckCommand, contractsSnapshotCommand } from './commands/contracts.command';
import { gdprEraseCommand, gdprExportCommand } from './commands/gdpr.command';
import { inboxListCommand, inboxReleaseCommand } from './commands/inbox.command';
import { keysRotateCommand } from './commands/keys.command';
import { migrateCommand } from './commands/migrate.command';
import {
  deadLettersDiscardCommand,
  deadLettersListCommand,
  deadLettersReplayCommand,
  outboxShowCommand,
} from './commands/outbox.command';
import { sagasListCommand, sagasShowCommand } from './commands/sagas.command';
import { sagasCompensateCommand, sagasRetryCommand } from './commands/saga-actions.command';
import { completionCommand } from './commands/completion.command';
import { statusCommand } from './commands/status.command';
import { describeTarget, openConnection, readDatabaseUrl, type SageConnection } from './connection';
import type { CliIo } from './io';
import { readOperator } from './operator';
import { escapeTerminalText } from './terminal-text';
import { errorText } from '../core/error-text';
import { scrubSecrets } from '../core/startup/connection-url';

export const COMMANDS: readonly CommandSpec[] = [
  statusCommand,
  sagasListCommand,
  sagasShowCommand,
  sagasRetryCommand,
  sagasCompensateCommand,
  outboxShowCommand,
  deadLettersListCommand,
  deadLettersReplayCommand,
  deadLettersDiscardCommand,
  inboxListCommand,
  inboxReleaseCommand,
  auditVerifyCommand,
  auditSealCommand,
  keysRotateCommand,
  gdprEraseCommand,
  gdprExportCommand,
  migrateCommand,
  asyncapiCommand,
  contractsCheckCommand,
  contractsSnapshotCommand,
  // Generated from this table (read when run), so it completes every command above.
  completionCommand(() => ({ commands: COMMANDS, globalOptions: GLOBAL_OPTIONS })),
];

const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  'database-url': {
    type: 'string',
    value: 'URL',
    description: 'postgres://user:password@host:5432/db (default: $DATABASE_URL)',
  },
  schema: {
    type: 'string',
    value: 'NAME',
    description: "schema of Sage's tables (default: $SAGE_SCHEMA, else sage)",
  },
  json: { type: 'boolean', description: 'machine-readable output on stdout' },
  help: { type: 'boolean', description: 'show help' },
};

/**
 * Runs one invocation and returns its exit code: 0 done, 1 failed (not found, database error,
 * pending migrations with --check), 2 usage error. Errors the user can act on are one line on
 * stderr; a stack trace only for a bug, and only with SAGE_DEBUG=1.
 */
export async function runCli(argv: readonly string[], rawIo: CliIo): Promise<number> {
  const io = terminalSafe(rawIo);
  let connection: SageConnection | undefined;
  let secrets: string[] = [];
  let target = 'the database';
  let command: CommandSpec | undefined;
  try {
    const parsed = parse(argv);
    const words = parsed.positionals;
    command = findCommand(words);
    const help = parsed.values.help === true || words[0] === 'help';
    if (!command) {
      const prefix = words[0] === 'help' ? words.slice(1) : words;
      const group = COMMANDS.filter((c) => startsWith(c.path, prefix));
      if (help || prefix.length === 0) {
        if (help) io.out(topHelp(group.length ? group : COMMANDS, prefix));
        else io.err(topHelp(COMMANDS, []));
        return help ? EXIT_OK : EXIT_USAGE;
      }
      if (group.length) {
        io.err(topHelp(group, prefix));
        return EXIT_USAGE;
      }
      throw new UsageError(`unknown command "${prefix.join(' ')}"`);
    }
    if (help) {
      io.out(commandHelp(command));
      return EXIT_OK;
    }
    const spec = command;
    const allowed = new Set([...Object.keys(GLOBAL_OPTIONS), ...Object.keys(spec.options)]);
    for (const name of Object.keys(parsed.values))
      if (!allowed.has(name))
        throw new UsageError(
          `"sage ${spec.path.join(' ')}" has no option --${name}`,
          spec.path.join(' '),
        );
    const values = parsed.values;
    const ctx: CommandContext = {
      args: words.slice(spec.path.length),
      options: values,
      json: values.json === true,
      io,
      db: async () => {
        if (connection) return connection;
        const fromOption = str(values['database-url']);
        const { url, secrets: s } = readDatabaseUrl(fromOption, io.env);
        secrets = s;
        if (fromOption !== undefined && hasPassword(url))
          io.err(
            'sage: warning: --database-url holds a password, which other users can read in "ps" and which stays in your shell history; set DATABASE_URL or PGPASSWORD instead\n',
          );
        target = describeTarget(url);
        const stalled = str(values['stalled-after']);
        if (stalled !== undefined && !/^\d+$/.test(stalled))
          throw new UsageError(
            `--stalled-after must be a whole number of seconds, got "${stalled}"`,
          );
        connection = await openConnection({
          url,
          schema: str(values.schema) ?? (io.env.SAGE_SCHEMA?.trim() || 'sage'),
          migrationsTableName: str(values['migrations-table']),
          stalledAfterSeconds: stalled === undefined ? undefined : Number(stalled),
          // Commands that change dead letters name their operator in the audit log.
          auditActor:
            'operator' in spec.options ? readOperator(values.operator, io.env) : undefined,
        });
        return connection;
      },
    };
    return (await spec.run(ctx)) ?? EXIT_OK;
  } catch (error) {
    return report(error, io, { command, secrets, target });
  } finally {
    await connection?.close().catch(() => undefined);
  }
}

/**
 * Both streams through escapeTerminalText (line feeds and tabs kept): whatever a command or an
 * error message carries from the database or a broker cannot drive the terminal. JSON output is
 * unchanged by it (json() leaves no raw control character but the indentation's line feeds).
 */
function terminalSafe(io: CliIo): CliIo {
  return {
    env: io.env,
    out: (text) => io.out(escapeTerminalText(text, { keepLineBreaks: true })),
    err: (text) => io.err(escapeTerminalText(text, { keepLineBreaks: true })),
  };
}

function hasPassword(url: string): boolean {
  try {
    return new URL(url).password !== '';
  } catch {
    return false;
  }
}

function parse(argv: readonly string[]) {
  const options: NonNullable<ParseArgsConfig['options']> = {};
  for (const spec of [{ options: GLOBAL_OPTIONS }, ...COMMANDS])
    for (const [name, o] of Object.entries(spec.options))
      options[name] = { type: o.type, multiple: o.multiple ?? false };
  options.help = { type: 'boolean', short: 'h' };
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      options,
      allowPositionals: true,
      strict: true,
    });
    return { values: values as OptionValues, positionals };
  } catch (error) {
    // parseArgs' messages name the option ("Unknown option '--x'", "Option '--limit <value>' argument missing").
    throw new UsageError(error instanceof Error ? error.message.split('\n')[0]! : String(error));
  }
}

function findCommand(words: readonly string[]): CommandSpec | undefined {
  return COMMANDS.find((c) => startsWith(words, c.path));
}

function startsWith(words: readonly string[], prefix: readonly string[]): boolean {
  return prefix.length <= words.length && prefix.every((w, i) => words[i] === w);
}

const str = (v: OptionValues[string]): string | undefined =>
  typeof v === 'string' ? v : undefined;

function report(
  error: unknown,
  io: CliIo,
  where: { command: CommandSpec | undefined; secrets: readonly string[]; target: string },
): number {
  const scrub = (text: string): string => scrubSecrets(text, where.secrets);
  const name = where.command ? where.command.path.join(' ') : '';
  if (error instanceof UsageError) {
    const helpFor = error.command || name;
    io.err(
      `sage: ${scrub(error.message)}\nRun "sage ${helpFor ? `${helpFor} ` : ''}--help" for usage.\n`,
    );
    return EXIT_USAGE;
  }
  if (error instanceof InvalidOptionsError) {
    io.err(`sage: ${scrub(error.message)}\n`);
    return EXIT_USAGE;
  }
  if (error instanceof CommandFailedError || error instanceof SagaOutboxError) {
    io.err(`sage: ${scrub(error.message)}\n`);
    return EXIT_FAILURE;
  }
  const pg = error as { code?: unknown; message?: unknown };
  const message = scrub(errorText(error));
  if (typeof pg.code === 'string') {
    if (pg.code === '42P01' || pg.code === '3F000')
      io.err(
        `sage: Sage's tables are missing in this database (${message}): wrong --schema, or not migrated yet ("sage migrate --check")\n`,
      );
    else if (/^(ECONN|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|28|3D)/.test(pg.code))
      io.err(`sage: cannot use the database at ${where.target}: ${message} (${pg.code})\n`);
    else io.err(`sage: database error: ${message} (SQLSTATE ${pg.code})\n`);
    return EXIT_FAILURE;
  }
  if (/timeout|terminated|connect/i.test(message)) {
    io.err(`sage: cannot use the database at ${where.target}: ${message}\n`);
    return EXIT_FAILURE;
  }
  io.err(`sage: unexpected error: ${message}\n`);
  if (io.env.SAGE_DEBUG === '1' && error instanceof Error && error.stack)
    io.err(`${scrub(error.stack)}\n`);
  else io.err('(set SAGE_DEBUG=1 for the stack trace)\n');
  return EXIT_FAILURE;
}

// --- help -------------------------------------------------------------------------------------

function usageLine(c: CommandSpec): string {
  const opts = Object.entries(c.options).map(([n, o]) =>
    o.type === 'boolean' ? `[--${n}]` : `[--${n} ${o.value ?? 'VALUE'}]`,
  );
  return ['sage', ...c.path, ...(c.arguments ? [c.arguments] : []), ...opts].join(' ');
}

function optionLines(options: Readonly<Record<string, OptionSpec>>): string {
  const rows = Object.entries(options).map(([n, o]) => [
    `--${n}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`,
    o.description,
  ]);
  const width = Math.max(...rows.map(([a]) => a!.length));
  return rows.map(([a, b]) => `  ${a!.padEnd(width)}  ${b}\n`).join('');
}

function topHelp(commands: readonly CommandSpec[], prefix: readonly string[]): string {
  const width = Math.max(...commands.map((c) => c.path.join(' ').length));
  return (
    `sage — operate Sage's sagas, outbox and inbox on PostgreSQL\n\n` +
    `Usage: sage ${prefix.length ? `${prefix.join(' ')} ` : ''}<command> [options]\n\nCommands:\n` +
    commands.map((c) => `  ${c.path.join(' ').padEnd(width)}  ${c.summary}\n`).join('') +
    `\nConnection and output (every command):\n${optionLines(GLOBAL_OPTIONS)}` +
    `\nExit codes: 0 done, 1 failed (not found, database error, pending migrations), 2 usage error.\n` +
    `Runbooks: docs/runbooks/README.md. "sage <command> --help" for a command's options.\n`
  );
}

function commandHelp(c: CommandSpec): string {
  return (
    `${c.summary}\n\nUsage: ${usageLine(c)}\n` +
    (Object.keys(c.options).length ? `\nOptions:\n${optionLines(c.options)}` : '') +
    `\nConnection and output:\n${optionLines(GLOBAL_OPTIONS)}\n${c.details}\n`
  );
}
