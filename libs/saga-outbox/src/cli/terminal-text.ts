/**
 * Text from the database or a broker (message ids, destinations, types, keys, errors) reaches an
 * operator's terminal through the CLI. Raw, it could clear the screen (`ESC[2J`), rewrite a line
 * (`CR`), retitle the window (OSC), or reorder what is read (bidi overrides, "Trojan Source").
 * Every human-readable line the CLI writes goes through {@link escapeTerminalText}; `--json`
 * output goes through {@link escapeJsonText}, which keeps it JSON that parses to the same values.
 */

/**
 * C0 controls, DEL, C1 controls (8-bit CSI/OSC that some terminals honour in UTF-8), bidi
 * embeddings/overrides/isolates and marks, and the Unicode line/paragraph separators.
 */
/* eslint-disable no-control-regex -- matching control characters is the point */
const UNSAFE =
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;
/** As UNSAFE, without line feed and tab. */
const UNSAFE_KEEPING_LINES =
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;
/* eslint-enable no-control-regex */

/** `\x1b`, `\x9b`, `\u202e`: what the character is, visibly, instead of what it would do. */
function visible(ch: string): string {
  const code = ch.charCodeAt(0);
  return code <= 0xff
    ? `\\x${code.toString(16).padStart(2, '0')}`
    : `\\u${code.toString(16).padStart(4, '0')}`;
}

/**
 * Replaces every control character (C0, DEL, C1), bidi control and line separator with a visible
 * escape (`\x1b`, `\u202e`). With `keepLineBreaks`, line feeds and tabs pass (the CLI's own
 * layout); a value shown on one line (a table cell, a `key: value` field) escapes them too.
 */
export function escapeTerminalText(
  text: string,
  options: { keepLineBreaks?: boolean } = {},
): string {
  return text.replace(options.keepLineBreaks ? UNSAFE_KEEPING_LINES : UNSAFE, visible);
}

/**
 * JSON.stringify escapes C0 controls but not DEL, C1 or bidi controls: `--json` output piped to a
 * terminal (or `jq -r`'d into one) would still carry them. Writes those as `\uXXXX` escapes, which
 * JSON parses back to the same strings.
 */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;
export function escapeJsonText(jsonText: string): string {
  return jsonText.replace(
    UNSAFE_IN_JSON,
    (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
