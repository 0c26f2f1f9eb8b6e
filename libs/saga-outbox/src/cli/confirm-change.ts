import { UsageError } from './cli-errors';
import { flag, type CommandContext, type OptionSpec } from './command';

/**
 * Every command that changes or deletes rows takes `--yes` and `--dry-run`, and without `--yes`
 * changes nothing: it prints what it would change (as `--dry-run` does) and exits 2 with a message
 * naming `--yes`. One rule for every such command, so an operator's habit is safe everywhere.
 */
export const CHANGE_OPTIONS: Readonly<Record<'dry-run' | 'yes', OptionSpec>> = {
  'dry-run': { type: 'boolean', description: 'print what would change; change nothing (exit 0)' },
  yes: {
    type: 'boolean',
    description: 'confirm the change (without it: print what would change, exit 2)',
  },
};

/** `apply` with --yes; `dry-run` with --dry-run; `unconfirmed` with neither (a preview that fails). */
export type ChangeMode = 'apply' | 'dry-run' | 'unconfirmed';

export function changeMode(ctx: CommandContext): ChangeMode {
  const dryRun = flag(ctx, 'dry-run');
  const yes = flag(ctx, 'yes');
  if (dryRun && yes) throw new UsageError('give --dry-run or --yes, not both');
  return yes ? 'apply' : dryRun ? 'dry-run' : 'unconfirmed';
}

/**
 * Ends an unconfirmed change after its preview was printed: `what` says what --yes would do
 * ("replay 2 dead letters").
 */
export function confirmationRequired(what: string): UsageError {
  return new UsageError(
    `nothing changed: this would ${what}; check the list above, then run again with --yes (--dry-run previews without this error)`,
  );
}

/** `1 dead letter`, `2 dead letters`. */
export function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
