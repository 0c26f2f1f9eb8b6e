/**
 * The text of anything thrown, for logs, stats, dead letters and error messages: an Error's
 * message (its name when the message is empty), anything else as a string. The one place this is
 * decided.
 */
export function errorText(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}
