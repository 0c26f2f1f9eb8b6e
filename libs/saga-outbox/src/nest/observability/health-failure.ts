import { errorText } from '../../core/error-text';
import type { SageLogger } from '../../core/ports/logger';
import { redactCredentials } from './redact-credentials';

/**
 * The machine-readable code of a failure, for a health body: the first string `code` along the
 * error and its `cause` chain (a PostgreSQL SQLSTATE such as `28P01`, a Node code such as
 * `ECONNREFUSED`, a Sage code such as `PROBE_TIMEOUT`), or the driver error's (TypeORM's
 * `driverError`). Undefined when none says.
 */
export function failureCode(error: unknown): string | undefined {
  let e: unknown = error;
  for (let depth = 0; depth < 5 && typeof e === 'object' && e !== null; depth++) {
    const { code, driverError, cause } = e as {
      code?: unknown;
      driverError?: unknown;
      cause?: unknown;
    };
    if (typeof code === 'string' && code) return code;
    e = driverError ?? cause;
  }
  return undefined;
}

/** What a failed check says in a health body. */
export interface HealthFailure {
  /** A generic reason, e.g. `database unreachable`: never a driver's or broker's text. */
  message: string;
  /** failureCode of the error, when it has one. */
  code?: string;
  /** The raw error text (URL credentials masked), only with `exposeErrors`. */
  error?: string;
}

/**
 * The health body of a failure and its log line. The raw text (a driver's "password authentication
 * failed for user …", a broker's host and port) goes to the logs, once per change of state, not on
 * every probe; the body carries a generic reason and the code, and the raw text only when the app
 * asked for it (`SageHealthModule.forRoot({ exposeErrors: true })`). A check that recovers is
 * logged once too.
 */
export class HealthFailureReporter {
  /** Per check: `up`, or the reason and code it last reported down with. */
  private readonly states = new Map<string, string>();

  constructor(
    private readonly logger: SageLogger,
    private readonly exposeErrors: boolean,
  ) {}

  /** `check` failed for `reason`; `error` is a thrown error or an adapter's detail text. */
  down(check: string, reason: string, error?: unknown): HealthFailure {
    const code = error === undefined ? undefined : failureCode(error);
    const text = error === undefined ? undefined : redactCredentials(errorText(error));
    const state = `down:${reason}:${code ?? ''}`;
    if (this.states.get(check) !== state) {
      this.states.set(check, state);
      this.logger.warn(`health check ${check} down: ${reason}${text ? `: ${text}` : ''}`, {
        event: 'health.check.down',
        check,
        reason,
        ...(code ? { code } : {}),
        ...(text ? { error: text } : {}),
      });
    }
    return {
      message: reason,
      ...(code ? { code } : {}),
      ...(this.exposeErrors && text ? { error: text } : {}),
    };
  }

  /** `check` passed: logs the recovery when it was down. */
  up(check: string): void {
    const previous = this.states.get(check);
    this.states.set(check, 'up');
    if (previous?.startsWith('down:'))
      this.logger.info(`health check ${check} up again`, { event: 'health.check.up', check });
  }

  /** Raw text for a body field only with `exposeErrors` (URL credentials masked). */
  exposed(text: string | undefined): string | undefined {
    return this.exposeErrors && text ? redactCredentials(text) : undefined;
  }
}
