/**
 * The text of anything thrown, for logs, stats, dead letters and error messages: an Error's
 * message (its name when the message is empty), anything else as a string. The one place this is
 * decided.
 */
export function errorText(error: unknown): string {
  // Duck-typed: errors from another realm (a vm context, jest) are not `instanceof Error`.
  if (isErrorLike(error))
    return error.message || (typeof error.name === 'string' ? error.name : 'Error');
  return String(error);
}

function isErrorLike(
  error: unknown,
): error is { message: string; name?: unknown; cause?: unknown } {
  return (
    error instanceof Error ||
    (typeof error === 'object' &&
      error !== null &&
      typeof (error as { message?: unknown }).message === 'string' &&
      typeof (error as { stack?: unknown }).stack === 'string')
  );
}

/**
 * `text` as a PostgreSQL `text` column can hold it: NUL (the one character it cannot store) written
 * as `\0`, then cut to `maxLength`. Error texts come from anywhere (a driver, a broker, a
 * participant's reply); recording one must never fail because of its bytes.
 */
export function storableText(text: string, maxLength = Number.POSITIVE_INFINITY): string {
  const safe = text.includes('\u0000') ? text.replaceAll('\u0000', '\\0') : text;
  return safe.length > maxLength ? safe.slice(0, maxLength) : safe;
}

/**
 * errorText of `error` followed by those of its `cause` chain, where they add something: a
 * driver's "connection refused" says little without its cause's "connect ECONNREFUSED
 * 127.0.0.1:4222". For connection failures in startup messages.
 */
export function errorChainText(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    const text = errorText(e);
    if (!parts.some((p) => p.includes(text))) parts.push(text);
    e = isErrorLike(e) ? e.cause : undefined;
  }
  return parts.join(': ');
}
