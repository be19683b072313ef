import { describe, expect, it } from 'vitest';
import { CanonicalJsonError, canonicalJson, canonicalJsonBytes, compareCodePoints } from './canonical-json.js';

describe('canonical JSON: the spec appendix examples', () => {
  const vectors: [string, string][] = [
    ['{}', '{}'],
    ['{\n    "one": 1,\n    "two": "Two"\n}', '{"one":1,"two":"Two"}'],
    ['{\n    "b": "2",\n    "a": "1"\n}', '{"a":"1","b":"2"}'],
    ['{"b":"2","a":"1"}', '{"a":"1","b":"2"}'],
    [
      `{
    "auth": {
        "success": true,
        "mxid": "@john.doe:example.com",
        "profile": {
            "display_name": "John Doe",
            "three_pids": [
                { "medium": "email", "address": "john.doe@example.org" },
                { "medium": "msisdn", "address": "123456789" }
            ]
        }
    }
}`,
      '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}',
    ],
    ['{\n    "a": "日本語"\n}', '{"a":"日本語"}'],
    ['{\n    "本": 2,\n    "日": 1\n}', '{"日":1,"本":2}'],
    ['{\n    "a": "\\u65E5"\n}', '{"a":"日"}'],
    ['{\n    "a": null\n}', '{"a":null}'],
    ['{\n    "a": -0,\n    "b": 1e10\n}', '{"a":0,"b":10000000000}'],
  ];
  it.each(vectors)('%s', (input, expected) => {
    expect(canonicalJson(JSON.parse(input))).toBe(expected);
  });

  it('writes UTF-8 bytes', () => {
    // 日 is U+65E5, UTF-8 e6 97 a5
    expect(canonicalJsonBytes({ a: '日' }).toString('hex')).toBe('7b2261223a22' + 'e697a5' + '227d');
  });
});

describe('canonical JSON: key order is by Unicode code point', () => {
  it('puts an astral character after U+E000..U+FFFF (UTF-16 order would not)', () => {
    const astral = '\u{1F600}'; // 😀, code point 0x1F600, UTF-16 D83D DE00
    const bmpHigh = '\uFF21'; // Ａ, code point 0xFF21
    expect(canonicalJson({ [astral]: 1, [bmpHigh]: 2 })).toBe(`{"${bmpHigh}":2,"${astral}":1}`);
    expect(canonicalJson({ [bmpHigh]: 2, [astral]: 1 })).toBe(`{"${bmpHigh}":2,"${astral}":1}`);
  });
  it('orders keys by code point, prefixes first', () => {
    expect(canonicalJson({ b: 1, a: 2, aa: 3, A: 4, _: 5, '': 6 })).toBe('{"":6,"A":4,"_":5,"a":2,"aa":3,"b":1}');
  });
  it('compareCodePoints agrees with comparing code point arrays', () => {
    const samples = ['a', '\uE000', '\uFFFF', '\u{10000}', '\u{1F600}', 'z\u{1F600}', 'z\uFFFD', '', 'zz'];
    for (const x of samples) {
      for (const y of samples) {
        const cx = [...x].map((c) => c.codePointAt(0)!);
        const cy = [...y].map((c) => c.codePointAt(0)!);
        let expected = 0;
        for (let i = 0; i < Math.min(cx.length, cy.length) && expected === 0; i++) expected = cx[i]! - cy[i]!;
        if (expected === 0) expected = cx.length - cy.length;
        expect(Math.sign(compareCodePoints(x, y))).toBe(Math.sign(expected));
      }
    }
  });
});

describe('canonical JSON: string escaping', () => {
  it('uses the short escapes and lowercase \\u00XX for other control characters', () => {
    expect(canonicalJson('"\\\b\f\n\r\t')).toBe('"\\"\\\\\\b\\f\\n\\r\\t"');
    expect(canonicalJson('\u0000\u0001\u000b\u001f')).toBe('"\\u0000\\u0001\\u000b\\u001f"');
  });
  it('writes everything else literally (DEL, U+2028, non-ASCII, /)', () => {
    expect(canonicalJson('\u007f\u2028\u2029/é\u{1F600}')).toBe('"\u007f\u2028\u2029/é\u{1F600}"');
  });
  it('refuses lone surrogates, which have no UTF-8 form', () => {
    expect(() => canonicalJson({ a: ['\uD800'] })).toThrow(/a\[0\].*lone UTF-16 surrogate/);
    expect(() => canonicalJson({ ['\uDC00']: 1 })).toThrow(CanonicalJsonError);
  });
});

describe('canonical JSON: numbers', () => {
  it('accepts the integer range bounds', () => {
    expect(canonicalJson([2 ** 53 - 1, -(2 ** 53) + 1, 0, -0, -5])).toBe('[9007199254740991,-9007199254740991,0,0,-5]');
  });
  it.each([
    [2 ** 53, /outside the allowed integer range/],
    [-(2 ** 53), /outside the allowed integer range/],
    [1e300, /outside the allowed integer range/],
    [1.5, /float \(1\.5\)/],
    [NaN, /NaN/],
    [Infinity, /Infinity/],
    [-Infinity, /-Infinity/],
  ])('refuses %s', (n, message) => {
    expect(() => canonicalJson({ n })).toThrow(message);
  });
});

describe('canonical JSON: refused values name their path', () => {
  const cases: [unknown, string][] = [
    [{ content: { foo: [1, 2, 0.5] } }, 'content.foo[2]'],
    [{ content: { 'm.relates_to': { x: undefined } } }, 'content["m.relates_to"].x'],
    [[[1, () => 1]], '[0][1]'],
    [{ a: 10n }, 'a'],
    [{ a: new Date(0) }, 'a'],
    [{ a: Symbol('s') }, 'a'],
    [undefined, ''],
  ];
  it.each(cases)('%o -> %s', (value, path) => {
    let error: unknown;
    try {
      canonicalJson(value);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CanonicalJsonError);
    expect((error as CanonicalJsonError).path).toBe(path);
    if (path) expect((error as Error).message).toContain(`at ${path}`);
  });
  it('turns a reference cycle into an error, not a stack overflow', () => {
    const a: Record<string, unknown> = {};
    a.self = a;
    expect(() => canonicalJson(a)).toThrow(/nested more than 512 levels/);
  });
  it('accepts null-prototype objects', () => {
    const o = Object.create(null) as Record<string, unknown>;
    o.b = 1;
    o.a = true;
    expect(canonicalJson(o)).toBe('{"a":true,"b":1}');
  });
});
