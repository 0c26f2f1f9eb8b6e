/**
 * What PostgreSQL cannot store faithfully in a `text` or `jsonb` value, checked once for every
 * string that reaches it: the NUL character (refused by the server, which aborts the whole
 * transaction) and unpaired UTF-16 surrogates (not valid UTF-8: the driver silently writes U+FFFD
 * instead, so the stored value is not the one given, and jsonb refuses the escaped form).
 */

/** A high surrogate not followed by a low one, or a low surrogate not preceded by a high one. */
export const LONE_SURROGATE =
  /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Why PostgreSQL cannot store `text` as it is, phrased to follow its subject (`"key" contains the
 * NUL character (\u0000)`), or undefined when it can.
 */
export function storableTextProblem(text: string): string | undefined {
  if (text.includes('\u0000')) return 'contains the NUL character (\\u0000)';
  if (LONE_SURROGATE.test(text)) return 'contains an unpaired UTF-16 surrogate (not valid UTF-8)';
  return undefined;
}

/** What to do about a storableTextProblem, for the error messages that report one. */
export const STORABLE_TEXT_FIX =
  'PostgreSQL cannot store it as given: remove the character, or encode the value (e.g. base64url)';
