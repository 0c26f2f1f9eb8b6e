import { userInfo } from 'node:os';
import { auditActorProblem } from '../core/audit/audit-actor';
import type { OptionSpec } from './command';
import { UsageError } from './cli-errors';

/** `--operator`, on the commands that change dead letters. */
export const OPERATOR: OptionSpec = {
  type: 'string',
  value: 'NAME',
  description:
    'who runs this, recorded as the actor of its audit entries (default: $SAGE_OPERATOR, else your OS user name)',
};

/**
 * The operator the audit log names for this invocation's changes: `--operator`, else
 * SAGE_OPERATOR, else the OS user name (skipped when it is unknown or not a valid name: the entries
 * then name the database role). A bad `--operator` / SAGE_OPERATOR is a UsageError naming it.
 */
export function readOperator(
  option: string | boolean | string[] | undefined,
  env: NodeJS.ProcessEnv,
): string | undefined {
  for (const [name, value] of [
    ['--operator', option],
    ['SAGE_OPERATOR', env.SAGE_OPERATOR || undefined],
  ] as const) {
    if (value === undefined) continue;
    const problem = auditActorProblem(value);
    if (problem) throw new UsageError(`${name} ${problem}`);
    return value as string;
  }
  try {
    const user = userInfo().username;
    return auditActorProblem(user) ? undefined : user;
  } catch {
    return undefined; // no passwd entry (a container's arbitrary uid)
  }
}
