/**
 * The two ways a command ends badly, each with its exit code. Both are printed as one line on
 * stderr, never with a stack trace: they are the user's to act on, not ours to debug.
 */

/** Bad input: unknown command or option, missing argument, invalid value. Exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(
    message: string,
    /** The command whose `--help` to point at (e.g. `sagas list`); empty for the top level. */
    readonly command = '',
  ) {
    super(message);
  }
}

/** The command ran and could not do what was asked (not found, pending migrations...). Exit code 1. */
export class CommandFailedError extends Error {
  override readonly name = 'CommandFailedError';
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
