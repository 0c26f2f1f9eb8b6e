import { errorText } from '../core/error-text';

/**
 * Loads a module the operator names on the command line (`--contracts FILE`, `--service FILE`):
 * `require` of the absolute `path`, its exports as a record. When it cannot be loaded, `fail`
 * builds the command's own error from the message (`cannot load --<option> <given>: <cause>`, with
 * how to load a `.ts` file), so each command keeps its exit code.
 */
export function requireUserModule(
  path: string,
  what: { option: string; given: string; command: string },
  fail: (message: string) => Error,
): Record<string, unknown> {
  let module: unknown;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports, security/detect-non-literal-require -- the operator names the module to load
    module = require(path);
  } catch (error) {
    const hint = /\.[cm]?ts$/.test(path)
      ? ` (a .ts file needs ts-node: node -r ts-node/register …/sage ${what.command} …, or point at the compiled .js)`
      : '';
    throw fail(`cannot load --${what.option} ${what.given}: ${errorText(error)}${hint}`);
  }
  return (typeof module === 'object' && module !== null ? module : {}) as Record<string, unknown>;
}

/** The names a loaded module exports, for an error saying which one to choose. */
export function exportNames(module: Record<string, unknown>): string[] {
  return Object.keys(module).filter((k) => k !== '__esModule');
}
