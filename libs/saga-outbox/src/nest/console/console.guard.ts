import {
  ForbiddenException,
  Inject,
  Injectable,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import {
  csrfCookie,
  csrfTokensMatch,
  CSRF_COOKIE,
  CSRF_FIELD,
  newCsrfToken,
  readCookie,
  SECURITY_HEADERS,
} from './console-security';
import {
  toGrant,
  type ConsoleGrant,
  type ResolvedConsoleOptions,
  type SageConsoleRequest,
} from './console.options';

export const SAGE_CONSOLE_OPTIONS = Symbol('SAGE_CONSOLE_OPTIONS');

/** What the guard leaves on the request for the handlers. */
export interface ConsoleRequestState {
  /** The console's path as the browser sees it (the app's global prefix included). */
  base: string;
  grant: ConsoleGrant;
  canAct: boolean;
  csrf: string;
}

export const CONSOLE_STATE = Symbol('sageConsole');
/** The mount path as requested, set first: error pages link the stylesheet and the console with it. */
export const CONSOLE_BASE = Symbol('sageConsoleBase');

/** The response as the console uses it (Node's ServerResponse, hence Express's, satisfies it). */
export interface ConsoleResponse {
  statusCode: number;
  setHeader(name: string, value: string | string[]): unknown;
  getHeader(name: string): unknown;
  end(body?: string): unknown;
}

type StatefulRequest = SageConsoleRequest & {
  [CONSOLE_STATE]?: ConsoleRequestState;
  [CONSOLE_BASE]?: string;
  body?: unknown;
};

/**
 * Every console request: security headers first (a refusal carries them too), then the app's
 * access policy (a throw or anything but true / an operator is a 403), then for a POST: actions
 * on, this operator allowed to act, and the double-submit CSRF token. A GET without a valid token
 * cookie gets a fresh one.
 */
@Injectable()
export class ConsoleGuard implements CanActivate {
  constructor(@Inject(SAGE_CONSOLE_OPTIONS) private readonly options: ResolvedConsoleOptions) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const http = context.switchToHttp();
    const req = http.getRequest<StatefulRequest>();
    const res = http.getResponse<ConsoleResponse>();
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
    const base = consoleBase(req, this.options.path);
    req[CONSOLE_BASE] = base;

    let grant: ConsoleGrant | undefined;
    try {
      grant = toGrant(await this.options.access(req));
    } catch {
      grant = undefined; // the policy failing is a refusal, never an open door
    }
    if (!grant)
      throw new ForbiddenException('The Sage console refused this request (access policy).');
    const canAct = this.options.actions && grant.canAct;

    let csrf = readCookie(req.headers.cookie, CSRF_COOKIE);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      if (!this.options.actions)
        throw new ForbiddenException(
          'The Sage console is read-only: actions are off (SageConsoleModule.forRoot({ actions: true }) enables them).',
        );
      if (!grant.canAct)
        throw new ForbiddenException(
          `${grant.operator ? `Operator ${grant.operator}` : 'This viewer'} may look but not act: the access policy did not grant canAct.`,
        );
      const body = req.body as Record<string, unknown> | undefined;
      if (!csrfTokensMatch(csrf, body?.[CSRF_FIELD]))
        throw new ForbiddenException(
          'Missing or invalid CSRF token: reload the page and submit the form again.',
        );
    } else if (!csrf || !csrfTokensMatch(csrf, csrf)) {
      csrf = newCsrfToken();
      const secure =
        req.headers['x-forwarded-proto'] === 'https' ||
        (req as { secure?: boolean }).secure === true;
      res.setHeader('Set-Cookie', csrfCookie(csrf, base, secure));
    }
    req[CONSOLE_STATE] = { base, grant, canAct, csrf: csrf! };
    return true;
  }
}

/**
 * The mount path as requested: the part of the URL's path up to and including the console's own
 * path (`/api/sage` under a global prefix `api`).
 */
export function consoleBase(req: SageConsoleRequest, path: string): string {
  const original = (req as { originalUrl?: unknown }).originalUrl;
  const url = typeof original === 'string' ? original : (req.url ?? '');
  const pathname = url.split('?')[0] ?? '';
  for (let at = pathname.indexOf(path); at >= 0; at = pathname.indexOf(path, at + 1)) {
    const end = at + path.length;
    if (end === pathname.length || pathname[end] === '/') return pathname.slice(0, end);
  }
  return path;
}
