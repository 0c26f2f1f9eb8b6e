import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import {
  buildContractSnapshot,
  contractSnapshotText,
  diffContractSnapshots,
  parseContractSnapshot,
  type ContractChange,
  type ContractSnapshot,
} from '../../core/contracts/contract-snapshot';
import type { MessageContract } from '../../core/contracts/message-contract';
import { errorText } from '../../core/error-text';
import { CommandFailedError, EXIT_FAILURE, EXIT_OK, UsageError } from '../cli-errors';
import { exportNames, requireUserModule } from '../user-module';
import {
  expectArgs,
  flag,
  stringOption,
  type CommandContext,
  type CommandSpec,
  type OptionSpec,
} from '../command';
import { json, table } from '../format';

const DEFAULT_SNAPSHOT = 'contracts.snapshot.json';

const CONTRACTS: OptionSpec = {
  type: 'string',
  value: 'FILE',
  description:
    'JS module (or .ts with ts-node registered) exporting `contracts`, an array of defineContract(...), or a default export array',
};

export const contractsSnapshotCommand: CommandSpec = {
  path: ['contracts', 'snapshot'],
  summary: 'record the declared message contracts in a snapshot file, to commit',
  options: {
    contracts: CONTRACTS,
    out: {
      type: 'string',
      value: 'FILE',
      description: `the snapshot file to write (default ${DEFAULT_SNAPSHOT})`,
    },
  },
  details: `Writes every declared contract version (type, version, schema, reply, compatibility mode) as
canonical JSON: keys sorted, so the file only changes when a contract does. Run it after an
intended contract change, review the diff, commit it; "sage contracts check" compares against it.
Needs no database. See docs/contracts.md.

Examples:
  sage contracts snapshot --contracts dist/contracts.js
  node -r ts-node/register node_modules/.bin/sage contracts snapshot --contracts src/contracts.ts`,
  run(ctx) {
    expectArgs(ctx, []);
    const snapshot = snapshotOf(ctx, 'contracts snapshot');
    const out = stringOption(ctx, 'out') ?? DEFAULT_SNAPSHOT;
    writeAtomically(resolve(process.cwd(), out), contractSnapshotText(snapshot), out);
    const types = Object.keys(snapshot.contracts).length;
    const versions = Object.values(snapshot.contracts).reduce(
      (n, v) => n + Object.keys(v).length,
      0,
    );
    ctx.io.out(
      ctx.json
        ? json({ out, types, versions })
        : `wrote ${out}: ${types} type(s), ${versions} version(s)\n`,
    );
    return Promise.resolve(EXIT_OK);
  },
};

export const contractsCheckCommand: CommandSpec = {
  path: ['contracts', 'check'],
  summary: 'fail when the declared contracts break the committed snapshot (for CI, before deploy)',
  options: {
    contracts: CONTRACTS,
    snapshot: {
      type: 'string',
      value: 'FILE',
      description: `the committed snapshot (default ${DEFAULT_SNAPSHOT})`,
    },
    'allow-removals': {
      type: 'boolean',
      description: 'report removed types and versions without failing on them',
    },
  },
  details: `Compares the declared contracts with the snapshot, type by type:
  - a published version must not change at all: declare a new version instead;
  - a new version must be compatible with the latest version below it, under its declared
    compatibility mode (backward by default; forward, full, none);
  - a removed type or version fails (producers or stored messages may still use it), unless
    --allow-removals.
Exit 0 compatible, 1 breaking (each change printed with its type, version and schema path),
2 usage (no such file, no contracts exported, snapshot unreadable). Needs no database.

Examples:
  sage contracts check --contracts dist/contracts.js
  sage contracts check --contracts dist/contracts.js --json | jq '.changes[] | select(.breaking)'`,
  run(ctx) {
    expectArgs(ctx, []);
    const current = snapshotOf(ctx, 'contracts check');
    const given = stringOption(ctx, 'snapshot') ?? DEFAULT_SNAPSHOT;
    const published = readSnapshot(resolve(process.cwd(), given), given);
    const diff = diffContractSnapshots(published, current, {
      allowRemovals: flag(ctx, 'allow-removals'),
    });
    const breaking = diff.changes.filter((c) => c.breaking);
    if (ctx.json) ctx.io.out(json({ snapshot: given, ...diff }));
    else {
      if (diff.changes.length)
        ctx.io.out(
          table(
            ['', 'TYPE', 'VERSION', 'PATH', 'CHANGE'],
            diff.changes.map((c) => [
              c.breaking ? 'BREAKING' : 'ok',
              c.type,
              c.version === undefined ? '-' : String(c.version),
              pathText(c),
              c.change,
            ]),
          ),
        );
      ctx.io.out(
        diff.compatible
          ? `compatible with ${given}${diff.changes.length ? '' : ': no change'}\n`
          : `${breaking.length} breaking change(s) against ${given}: declare a new version of the type instead of changing a published one, keep new versions compatible with their compatibility mode, or run "sage contracts snapshot" after a break agreed with every consumer\n`,
      );
    }
    return Promise.resolve(diff.compatible ? EXIT_OK : EXIT_FAILURE);
  },
};

/** `reply:/properties/x`, `/properties/x`, `(root)`. */
function pathText(change: ContractChange): string {
  const path = change.path === '' ? '(root)' : change.path;
  return change.schema === 'reply' ? `reply:${path}` : path;
}

function snapshotOf(ctx: CommandContext, command: string): ContractSnapshot {
  const file = stringOption(ctx, 'contracts');
  if (file === undefined) throw new UsageError('--contracts FILE is required', command);
  return buildContractSnapshot(loadContracts(resolve(process.cwd(), file), file, command));
}

/**
 * The contracts a module exports: its `contracts` export, else its default export, when that is
 * an array. Anything else is a usage error naming what the module does export.
 */
function loadContracts(path: string, given: string, command: string): MessageContract[] {
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator names the module
  if (!existsSync(path)) throw new UsageError(`--contracts ${given}: no such file`, command);
  const exports = requireUserModule(
    path,
    { option: 'contracts', given, command: 'contracts' },
    (message) => new UsageError(message, command),
  );
  const found = Array.isArray(exports)
    ? (exports as unknown[])
    : Array.isArray(exports.contracts)
      ? exports.contracts
      : Array.isArray(exports.default)
        ? exports.default
        : undefined;
  if (found === undefined) {
    const names = exportNames(exports);
    throw new UsageError(
      `--contracts ${given} must export "contracts" (an array of defineContract(...)) or a default export array; ` +
        (names.length ? `it exports: ${names.join(', ')}` : 'it exports nothing'),
      command,
    );
  }
  return found as MessageContract[];
}

function readSnapshot(path: string, given: string): ContractSnapshot {
  let text: string;
  try {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator names the file to read
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new UsageError(
      missing
        ? `--snapshot ${given}: no such file; record one with "sage contracts snapshot --contracts FILE --out ${given}" and commit it`
        : `cannot read --snapshot ${given}: ${errorText(error)}`,
      'contracts check',
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`--snapshot ${given} is not JSON: ${errorText(error)}`, 'contracts check');
  }
  const parsed = parseContractSnapshot(value);
  if (!parsed.ok) throw new UsageError(`--snapshot ${given} ${parsed.problem}`, 'contracts check');
  return parsed.snapshot;
}

/** Writes `text` to a temporary file beside `path`, then renames it over: never half a snapshot. */
function writeAtomically(path: string, text: string, given: string): void {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator names the file to write
    writeFileSync(temp, text);
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- same file
    renameSync(temp, path);
  } catch (error) {
    throw new CommandFailedError(`cannot write --out ${given}: ${errorText(error)}`);
  }
}
