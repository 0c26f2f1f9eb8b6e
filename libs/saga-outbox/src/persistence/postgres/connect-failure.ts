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
  const tls = tlsFix(error, option);
  if (tls !== undefined) return tls;
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

/** Node's codes for a server certificate that does not verify against the CA given. */
const UNTRUSTED_CERTIFICATE = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
]);

/**
 * The fix for a TLS failure (no retry changes it): the server's certificate is not trusted or not
 * for this host, the server wants TLS and got none, or TLS was asked of a server without it.
 */
function tlsFix(error: unknown, option: string): string | undefined {
  const ssl = option.startsWith('postgres.')
    ? 'postgres.ssl'
    : option.startsWith('dataSource')
      ? "the DataSource's ssl option"
      : `${option} (sslmode=)`;
  const code = (error as { code?: unknown } | null)?.code;
  const message = (error as { message?: unknown } | null)?.message;
  const text = typeof message === 'string' ? message : '';
  if (typeof code === 'string' && UNTRUSTED_CERTIFICATE.has(code))
    return `The server's TLS certificate is not signed by a CA Sage trusts: set ${ssl}${ssl === 'postgres.ssl' ? '.ca' : ' (ca)'} to the CA certificate (PEM) that signed it.`;
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID')
    return `The server's TLS certificate is outside its validity period: renew it on the server.`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return `The server's TLS certificate is not for the host connected to: connect by a name it lists, or set ${ssl}${ssl === 'postgres.ssl' ? '.servername' : ' (servername)'} to one.`;
  // pg_hba.conf has only hostssl lines for this client: "no pg_hba.conf entry … no encryption".
  if (code === '28000' && /no encryption/i.test(text))
    return `The server accepts this client only over TLS: set ${ssl} (e.g. { ca: <the CA certificate> }), or sslmode=verify-full in the URL.`;
  if (/does not support SSL/i.test(text))
    return `The server has TLS off (ssl = off): turn it on there, or remove ${ssl}.`;
  return undefined;
}
