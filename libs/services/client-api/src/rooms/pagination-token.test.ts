import { describe, expect, it } from 'vitest';
import { decodePaginationToken, encodePaginationToken } from './pagination-token.js';

describe('pagination tokens', () => {
  it('round-trip positions, the negative ones of backfilled history included', () => {
    for (const p of [0, 1, 42, 999_999_999_999_999, -1, -42, -999_999_999_999_999]) {
      expect(decodePaginationToken(encodePaginationToken(p), 'from')).toBe(p);
    }
    expect(encodePaginationToken(-7)).toBe('t-7');
  });

  it('accept every token issued before: t<position> and /sync tokens', () => {
    expect(decodePaginationToken('t0', 'from')).toBe(0);
    expect(decodePaginationToken('t123', 'from')).toBe(123);
    expect(decodePaginationToken('s42_7_3_9_0_12_5', 'from')).toBe(42);
    expect(decodePaginationToken('s42_7_3_9_0_12_5~k2x9q1', 'from')).toBe(42);
  });

  it('refuse what is not one of ours', () => {
    for (const bad of ['t', 't-', 't--1', 't1.5', 't+3', 'x1', 't1234567890123456', 's-1', '']) {
      expect(() => decodePaginationToken(bad, 'from')).toThrow(/not a pagination token/);
    }
  });
});
