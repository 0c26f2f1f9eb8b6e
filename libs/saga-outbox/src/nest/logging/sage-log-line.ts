import { inspect, type InspectOptionsStylized } from 'node:util';

/** The Nest log levels Sage writes at. */
export type SageLogLevel = 'debug' | 'log' | 'warn' | 'error';

/**
 * Fields that repeat the message's own text (`error`, `reason` quoted in it; the saga's name) are
 * left out of the one-line text; they stay in the structured form.
 */
const SHOWN_IN_MESSAGE = ['error', 'reason', 'saga'];

/** ConsoleLogger's level colours (Nest's cli-colors), for a line printed to a colour terminal. */
const LEVEL_COLOUR: Record<SageLogLevel, (text: string) => string> = {
  log: (t) => `\x1B[32m${t}\x1B[39m`,
  warn: (t) => `\x1B[33m${t}\x1B[39m`,
  error: (t) => `\x1B[31m${t}\x1B[39m`,
  debug: (t) => `\x1B[95m${t}\x1B[39m`,
};

/**
 * One structured log line: `msg` and the fields, as own enumerable properties, so every logger
 * that serialises objects writes them as fields (nestjs-pino merges them into the JSON line;
 * ConsoleLogger's `json: true` mode nests them under `message`). A logger that prints objects with
 * `util.inspect` (Nest's default ConsoleLogger in text mode) gets one line of text instead of a
 * multi-line object dump: the message, then `key=value` pairs (see `sageLogText`).
 *
 * This needs no guess at which logger the app installed, and stays right when the app swaps
 * loggers after Sage logged (`bufferLogs: true`, then `app.useLogger(app.get(Logger))`): each
 * logger renders the same object its own way.
 */
export class SageLogLine {
  readonly msg: string;
  // `#` fields are neither enumerable nor copied: they never reach a structured line.
  readonly #level: SageLogLevel;
  readonly #fields: Record<string, unknown>;

  constructor(level: SageLogLevel, msg: string, fields: Record<string, unknown>) {
    this.#level = level;
    this.#fields = fields;
    this.msg = msg;
    for (const [key, value] of Object.entries(fields)) {
      if (value === undefined || key === 'msg') continue;
      // defineProperty, not assignment: a field named `__proto__` stays a field.
      Object.defineProperty(this, key, { value, enumerable: true, configurable: true });
    }
  }

  /** What `util.inspect` (so ConsoleLogger's text mode) prints: one line. */
  [inspect.custom](_depth: number, options: InspectOptionsStylized): string {
    const text = sageLogText(this.msg, this.#fields);
    return options.colors ? LEVEL_COLOUR[this.#level](text) : text;
  }

  toString(): string {
    return sageLogText(this.msg, this.#fields);
  }
}

/**
 * `msg key=value key=value` on one line: newlines in the message are written `\n`; values that
 * are not plain words are JSON-quoted (so an error text with spaces or newlines stays one quoted
 * value); undefined fields are left out, `event` comes last, and fields whose text the message
 * already shows (SHOWN_IN_MESSAGE) are not repeated.
 */
export function sageLogText(msg: string, fields: Record<string, unknown> = {}): string {
  const message = oneLine(msg);
  const pairs: string[] = [];
  let event: string | undefined;
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined || key === 'msg') continue;
    if (SHOWN_IN_MESSAGE.includes(key) && typeof value === 'string' && msg.includes(value))
      continue;
    const pair = `${key}=${textValue(value)}`;
    if (key === 'event') event = pair;
    else pairs.push(pair);
  }
  if (event) pairs.push(event);
  return pairs.length ? `${message} ${pairs.join(' ')}` : message;
}

/** Text with its line breaks written as `\n`, so a log line never spans two. */
export function oneLine(text: string): string {
  return /[\r\n]/.test(text) ? text.replace(/\r?\n|\r/g, '\\n') : text;
}

function textValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=\\]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  if (value === null) return 'null';
  // Objects as compact JSON; what JSON cannot show (a function, a cycle) as inspect's one-line view.
  const inspected = (): string =>
    JSON.stringify(inspect(value, { breakLength: Infinity, depth: 2 }));
  try {
    return JSON.stringify(value) ?? inspected();
  } catch {
    return inspected();
  }
}
