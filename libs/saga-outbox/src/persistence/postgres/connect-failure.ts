/**
 * What a failed PostgreSQL connection attempt means for startup: whether retrying can help, and
 * the driver's reason as one line. The SQLSTATEs are the server's answers no retry changes.
 */
import { errorChainText } from '../../core/error-text';

/**
 * SQLSTATE → what to do, for the refusals no retry fixes. `at(field)` names the setting to check:
 * the URL option, or the separate field (`postgres.user`, `postgres.database`).
 */
const PERMANENT: Record<string, (at: (field: string) => string) => string> = {
  // invalid_password
  '28P01': (at) =>
    `Check the user name and password in ${at('user')}${at('user') === at('password') ? '' : ` and ${at('password')}`}.`,
  // invalid_authorization_specification: the role does not exist, or pg_hba.conf has no entry for it
  '28000': (at) =>
    `Check the user name in ${at('user')}, and that the server's pg_hba.conf lets it connect from this host.`,
  // invalid_catalog_name: the database does not exist
  '3D000': (at) => `Create the database, or fix its name in ${at('database')}.`,
  // insufficient_privilege: no CONNECT right on the database
  '42501': (at) =>
    `Grant the user in ${at('user')} CONNECT on the database (GRANT CONNECT ON DATABASE ...).`,
};

/**
 * The fix for a failure no retry can change (wrong password, unknown role or database); else
 * undefined. `option` is where the connection was configured: a URL option (`postgres.url`,
 * `dataSource`), or `postgres.host` for the separate fields (then the fix names the field).
 */
export function permanentConnectFix(error: unknown, option: string): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return undefined;
  const prefix = option.endsWith('.host') ? option.slice(0, -'.host'.length) : undefined;
  return PERMANENT[code]?.((field) => (prefix === undefined ? option : `${prefix}.${field}`));
}

/**
 * The driver's reason for a failed connection attempt, one line: the message and its causes, the
 * SQLSTATE when the server answered. A host name resolving to several addresses fails as an
 * AggregateError whose own message is empty: its errors are listed instead.
 */
export function connectFailureReason(error: unknown): string {
  // Duck-typed, as errors from another realm are not `instanceof AggregateError`.
  const errors = (error as { errors?: unknown } | null)?.errors;
  if (Array.isArray(errors) && errors.length)
    return [...new Set(errors.map((e) => errorChainText(e)))].join('; ');
  const code = (error as { code?: unknown } | null)?.code;
  const text = errorChainText(error);
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !text.includes(code)
    ? `${text} (SQLSTATE ${code})`
    : text;
}
