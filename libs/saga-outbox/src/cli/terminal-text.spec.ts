import { cell, fields, json, table } from './format';
import { escapeJsonText, escapeTerminalText } from './terminal-text';

const HOSTILE = 'id-1\x1b[2J\x1b]0;owned\x07\r\u202egnp.exe\u2066x\u2069\x7f\x9b31m\u2028end';
const RAW_CONTROL =
  // eslint-disable-next-line no-control-regex -- asserting none is left
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/;

describe('escapeTerminalText', () => {
  it('shows every control, DEL, C1 and bidi character as a visible escape', () => {
    expect(escapeTerminalText(HOSTILE)).toBe(
      'id-1\\x1b[2J\\x1b]0;owned\\x07\\x0d\\u202egnp.exe\\u2066x\\u2069\\x7f\\x9b31m\\u2028end',
    );
  });

  it('keeps line feeds and tabs only when asked (the CLI layout), never CR', () => {
    expect(escapeTerminalText('a\nb\tc\rd')).toBe('a\\x0ab\\x09c\\x0dd');
    expect(escapeTerminalText('a\nb\tc\rd', { keepLineBreaks: true })).toBe('a\nb\tc\\x0dd');
  });

  it('leaves ordinary text, accents and emoji alone', () => {
    const text = 'payments.order-placed café 注文 ✓ 🚀 "quoted" \\back';
    expect(escapeTerminalText(text)).toBe(text);
  });
});

describe('the formatter escapes every value', () => {
  it('in cells, tables and fields', () => {
    expect(cell(HOSTILE, 500)).not.toMatch(RAW_CONTROL);
    const t = table(['ID', 'ERROR'], [[HOSTILE, 'x\ny']]);
    expect(t).not.toMatch(RAW_CONTROL);
    expect(t.split('\n')).toHaveLength(3); // header, one row, trailing newline: no injected line
    expect(t).toContain('\\x1b[2J');
    const f = fields([['last error', `line 1\n${HOSTILE}`]]);
    expect(f).not.toMatch(RAW_CONTROL);
    expect(f.trimEnd().split('\n')).toHaveLength(1);
  });

  it('in --json output, which parses back to the same strings', () => {
    const value = { id: HOSTILE, nested: [{ error: HOSTILE }] };
    const out = json(value);
    expect(out.slice(0, -1)).not.toMatch(RAW_CONTROL);
    expect(JSON.parse(out)).toEqual(value);
    expect(escapeJsonText('"\u202e"')).toBe('"\\u202e"');
  });
});
