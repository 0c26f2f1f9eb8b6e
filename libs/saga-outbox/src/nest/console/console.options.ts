import { InvalidOptionsError } from '../../core/errors';
import { auditActorProblem } from '../../core/audit/audit-actor';
import { ConsoleAccessPolicyMissingError } from './console-errors';

/**
 * The request as the access policy sees it (Express's request satisfies it): enough to read a
 * header, a cookie or what an authentication middleware put on it (`req.user`).
 */
export interface SageConsoleRequest {
  method: string;
  url?: string;
  headers: Record<string, string | string[] | undefined>;
  [key: string]: unknown;
}

/**
 * What a request may do: `false` nothing (403), `true` look (read-only), or an operator who may
 * also act when `canAct` (and the module has `actions: true`), named in the audit log.
 */
export type SageConsoleAccess = boolean | { operator: string; canAct?: boolean };

export interface SageConsoleModuleOptions {
  /**
   * Where the console is mounted in the app (default `/sage`): letters, digits, `-`, `_` and `/`
   * segments. The app's global prefix, if any, comes before it.
   */
  path?: string;
  /**
   * Required: who may see the console and who may act. Called for every request; throwing counts
   * as a refusal. Return `false`, `true` (read-only) or `{ operator, canAct }`.
   */
  access: (request: SageConsoleRequest) => SageConsoleAccess | Promise<SageConsoleAccess>;
  /**
   * Whether the console may change anything (replay or discard dead letters, release inbox dead
   * letters). Default false: read-only, whatever `access` returns.
   */
  actions?: boolean;
  /** Seconds between refreshes of the relay page (default 10; 0: no refresh). */
  refreshSeconds?: number;
  /** Rows per page of a listing (default 50, 1-500). */
  pageSize?: number;
}

export interface ResolvedConsoleOptions {
  path: string;
  access: SageConsoleModuleOptions['access'];
  actions: boolean;
  refreshSeconds: number;
  pageSize: number;
}

/** Segments of letters, digits, `-` and `_`, checked one by one (no nested quantifier). */
const SEGMENT = /^[A-Za-z0-9_-]+$/;
const isMountPath = (path: string): boolean =>
  path.startsWith('/') &&
  path
    .slice(1)
    .split('/')
    .every((segment) => SEGMENT.test(segment));

/** Checks the options at `forRoot`, before anything is mounted. */
export function resolveConsoleOptions(
  options: SageConsoleModuleOptions | undefined,
): ResolvedConsoleOptions {
  if (typeof options?.access !== 'function') throw new ConsoleAccessPolicyMissingError();
  const path = options.path ?? '/sage';
  if (typeof path !== 'string' || !isMountPath(path))
    throw new InvalidOptionsError(
      'SageConsoleModule.path',
      `must be a path such as "/sage" or "/ops/sage" (letters, digits, "-", "_"), got ${JSON.stringify(path)}`,
    );
  if (options.actions !== undefined && typeof options.actions !== 'boolean')
    throw new InvalidOptionsError(
      'SageConsoleModule.actions',
      `must be true or false, got ${JSON.stringify(options.actions)}`,
    );
  const refreshSeconds = options.refreshSeconds ?? 10;
  if (!Number.isInteger(refreshSeconds) || refreshSeconds < 0 || refreshSeconds > 3600)
    throw new InvalidOptionsError(
      'SageConsoleModule.refreshSeconds',
      `must be an integer from 0 to 3600, got ${String(refreshSeconds)}`,
    );
  const pageSize = options.pageSize ?? 50;
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 500)
    throw new InvalidOptionsError(
      'SageConsoleModule.pageSize',
      `must be an integer from 1 to 500, got ${String(pageSize)}`,
    );
  return {
    path,
    access: options.access,
    actions: options.actions ?? false,
    refreshSeconds,
    pageSize,
  };
}

/** What the policy granted this request, normalised. */
export interface ConsoleGrant {
  operator: string | undefined;
  canAct: boolean;
}

/** The policy's answer as a grant, or undefined for a refusal (anything but true or a valid object). */
export function toGrant(access: unknown): ConsoleGrant | undefined {
  if (access === true) return { operator: undefined, canAct: false };
  if (typeof access !== 'object' || access === null) return undefined;
  const { operator, canAct } = access as { operator?: unknown; canAct?: unknown };
  // A name the audit log would refuse (blank, control characters) is a refusal, not a crash.
  if (auditActorProblem(operator)) return undefined;
  return { operator: operator as string, canAct: canAct === true };
}
