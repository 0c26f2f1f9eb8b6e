import { isSealedValue } from '../../core/protection/sealed-value';
import { html, raw, type Html } from './html';

/** Bounds on what one JSON view renders: a hostile or huge payload cannot exhaust the server. */
export interface JsonViewLimits {
  /** Nesting shown; deeper values are elided (default 12). */
  maxDepth: number;
  /** Values (scalars, objects, arrays) shown in all; the rest is elided (default 2000). */
  maxNodes: number;
  /** Characters of one string shown (default 2000). */
  maxString: number;
}

export const DEFAULT_JSON_VIEW_LIMITS: JsonViewLimits = {
  maxDepth: 12,
  maxNodes: 2000,
  maxString: 2000,
};

type Frame =
  | { kind: 'value'; value: unknown; depth: number; label: string | null }
  | { kind: 'close'; text: string };

/**
 * A JSON value as indented, escaped HTML, rendered iteratively (an explicit stack, no recursion:
 * the depth of a payload is the sender's choice). Encrypted values (`{"sage:enc":"v1",…}`) are
 * shown as a badge with their key reference, never decrypted; the console holds no keys.
 */
export function jsonView(value: unknown, limits: JsonViewLimits = DEFAULT_JSON_VIEW_LIMITS): Html {
  const out: string[] = [];
  const stack: Frame[] = [{ kind: 'value', value, depth: 0, label: null }];
  let nodes = 0;
  let elided = false;
  while (stack.length) {
    const frame = stack.pop()!;
    if (frame.kind === 'close') {
      out.push(frame.text);
      continue;
    }
    const { value: v, depth, label } = frame;
    const indent = '  '.repeat(depth);
    const prefix =
      label === null ? indent : `${indent}${html`<span class="k">${label}</span>`.text}: `;
    if (++nodes > limits.maxNodes) {
      if (!elided)
        out.push(`${indent}${html`<span class="elided">… (more values not shown)</span>`.text}\n`);
      elided = true;
      continue;
    }
    if (isSealedValue(v)) {
      out.push(
        `${prefix}${html`<span class="sealed" title="encrypted (sage:enc v1): the console never decrypts">encrypted (${keyKind(v.key)})</span>`.text}\n`,
      );
      continue;
    }
    if (v === null || typeof v !== 'object') {
      out.push(`${prefix}${scalar(v, limits.maxString).text}\n`);
      continue;
    }
    const entries: [string | null, unknown][] = Array.isArray(v)
      ? v.map((item) => [null, item] as [null, unknown])
      : Object.entries(v as Record<string, unknown>);
    const [open, close] = Array.isArray(v) ? ['[', ']'] : ['{', '}'];
    if (!entries.length) {
      out.push(`${prefix}${open}${close}\n`);
      continue;
    }
    if (depth >= limits.maxDepth) {
      out.push(
        `${prefix}${html`<span class="elided">${open}… ${entries.length} entries, nested too deep to show${close}</span>`.text}\n`,
      );
      continue;
    }
    out.push(`${prefix}${open}\n`);
    stack.push({ kind: 'close', text: `${indent}${close}\n` });
    for (let i = entries.length - 1; i >= 0; i--) {
      const [key, item] = entries[i]!;
      stack.push({ kind: 'value', value: item, depth: depth + 1, label: key });
    }
  }
  return html`<pre class="json">${raw(out.join(''))}</pre>`;
}

function scalar(v: unknown, maxString: number): Html {
  if (typeof v === 'string') {
    const shown = v.length > maxString ? `${v.slice(0, maxString)}… (${v.length} characters)` : v;
    return html`<span class="s">${JSON.stringify(shown)}</span>`;
  }
  if (typeof v === 'number' || typeof v === 'boolean')
    return html`<span class="n">${String(v)}</span>`;
  if (v === null) return html`<span class="n">null</span>`;
  // Not JSON (undefined, bigint…): a value a JSON column never holds; named, not stringified.
  return html`<span class="n">${typeof v}</span>`;
}

/** A master key (`m:`) or a data subject's key (`s:`), without the subject's key id. */
function keyKind(key: string): string {
  if (key.startsWith('m:')) return `master key ${key.slice(2)}`;
  if (key.startsWith('s:')) return 'data subject key';
  return 'unknown key';
}
