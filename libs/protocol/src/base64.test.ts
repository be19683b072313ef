import { describe, expect, it } from 'vitest';
import { Base64Error, decodeBase64, encodeUnpaddedBase64, encodeUnpaddedBase64Url } from './base64.js';

const bytes = (s: string) => Buffer.from(s, 'utf8');

describe('unpadded base64: the spec appendix examples', () => {
  it.each([
    ['', ''],
    ['f', 'Zg'],
    ['fo', 'Zm8'],
    ['foo', 'Zm9v'],
    ['foob', 'Zm9vYg'],
    ['fooba', 'Zm9vYmE'],
    ['foobar', 'Zm9vYmFy'],
  ])('%j -> %j, and back', (plain, encoded) => {
    expect(encodeUnpaddedBase64(bytes(plain))).toBe(encoded);
    expect(encodeUnpaddedBase64Url(bytes(plain))).toBe(encoded);
    expect(decodeBase64(encoded).toString('utf8')).toBe(plain);
    const padded = encoded + '='.repeat((4 - (encoded.length % 4)) % 4);
    expect(decodeBase64(padded).toString('utf8')).toBe(plain);
  });
});

describe('base64 alphabets', () => {
  const raw = Uint8Array.from([0xfb, 0xff, 0xbf, 0xfe]); // uses the characters 62 and 63
  it('encodes standard with +/ and URL-safe with -_', () => {
    expect(encodeUnpaddedBase64(raw)).toBe('+/+//g');
    expect(encodeUnpaddedBase64Url(raw)).toBe('-_-__g');
  });
  it('decodes both alphabets, padded or not', () => {
    for (const s of ['+/+//g', '+/+//g==', '-_-__g', '-_-__g==']) {
      expect([...decodeBase64(s)]).toEqual([...raw]);
    }
  });
  it('accepts a Uint8Array view that is not a whole buffer', () => {
    const big = Uint8Array.from([1, 2, 3, 0x66, 0x6f, 0x6f, 9]);
    expect(encodeUnpaddedBase64(big.subarray(3, 6))).toBe('Zm9v');
  });
});

describe('base64: invalid input is refused', () => {
  it.each([
    ['Zm9v!', /invalid character "!"/],
    ['Zm 9v', /invalid character " "/],
    ['Zm9vY', /length 5/],
    ['Z', /length 1/],
    ['Zg=', /padding/],
    ['Zm9v=', /padding/],
    ['Zg===', /padding/],
    ['Z=g=', /invalid character "="/],
    ['+/-_', /mixes/],
  ])('%j', (input, message) => {
    expect(() => decodeBase64(input)).toThrow(Base64Error);
    expect(() => decodeBase64(input)).toThrow(message);
  });
});
