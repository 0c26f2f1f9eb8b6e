/**
 * The text of anything thrown, for logs, stats, dead letters and error messages: an Error's
 * message (its name when the message is empty), anything else as a string. The one place this is
 * decided.
 */
export function errorText(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
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
