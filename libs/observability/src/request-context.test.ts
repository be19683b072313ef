import { describe, expect, it } from 'vitest';
import { acceptRequestId, currentRequestId, newRequestId, runWithRequestId } from './request-context.js';

describe('request context', () => {
  it('accepts reasonable ids and replaces anything else with a fresh one', () => {
    expect(acceptRequestId('abc-123_x.y:z')).toBe('abc-123_x.y:z');
    for (const bad of [undefined, '', 'has space', 'x'.repeat(129), 'new\nline', ['a', 'b'], 'ünïcode']) {
      const id = acceptRequestId(bad);
      expect(id).not.toBe(bad);
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
    }
    expect(newRequestId()).not.toBe(newRequestId());
  });

  it('keeps the id across awaits and keeps concurrent requests apart', async () => {
    const seen: Array<[string, string | undefined]> = [];
    const work = (id: string, delay: number) =>
      runWithRequestId(id, async () => {
        await new Promise((r) => setTimeout(r, delay));
        seen.push([id, currentRequestId()]);
      });
    await Promise.all([work('one', 5), work('two', 1)]);
    expect(seen).toEqual([
      ['two', 'two'],
      ['one', 'one'],
    ]);
    expect(currentRequestId()).toBeUndefined();
  });
});
