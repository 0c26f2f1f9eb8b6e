import { jsonDepth } from './sample-http';

describe('jsonDepth (the samples refuse JSON nested deeper than 8 levels before parsing it)', () => {
  const depth = (text: string) => jsonDepth(Buffer.from(text));

  it('counts objects and arrays, not brackets inside strings or escaped quotes', () => {
    expect(depth('1')).toBe(0);
    expect(depth('{"a":1}')).toBe(1);
    expect(depth('{"a":[{"b":[]}],"c":{}}')).toBe(4);
    expect(depth('{"a":"[[[[{{{{"}')).toBe(1);
    expect(depth('{"a":"say \\"[[[[\\" ok","b":[1]}')).toBe(2);
    expect(depth('['.repeat(100_000))).toBe(100_000);
  });
});
