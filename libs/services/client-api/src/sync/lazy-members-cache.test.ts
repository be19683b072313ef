import { describe, expect, it } from 'vitest';
import { decodeSyncToken } from '../sync-token.js';
import { LazyMembersCache } from './lazy-members-cache.js';

const U = '@u:hs';
const D = 'DEV';
const R = '!r:hs';

describe('LazyMembersCache', () => {
  it('trusts a record only with the tagged token of its last answer', () => {
    const cache = new LazyMembersCache();
    const first = cache.begin(U, D, undefined);
    first.remember(R, [['@a:hs', '$a']]);
    const t1 = first.commit('s5');
    expect(t1).toMatch(/^s5~[0-9a-z]+$/);
    expect(decodeSyncToken(t1)?.events).toBe(5);

    const second = cache.begin(U, D, t1);
    expect(second.sent(R)?.get('@a:hs')).toBe('$a');
    second.remember(R, [['@b:hs', '$b']]);
    const t2 = second.commit('s5'); // same positions, but a member given: a new token
    expect(t2).not.toBe(t1);

    expect(cache.begin(U, D, 's5').sent(R)).toBeUndefined(); // untagged: from another chain
    expect(cache.begin(U, D, t1).sent(R)).toBeUndefined(); // an older answer of the chain
    const third = cache.begin(U, D, t2);
    expect([...(third.sent(R) ?? [])]).toEqual([['@a:hs', '$a'], ['@b:hs', '$b']]);
    // Nothing moved and no member given (a long poll that timed out): the same token, the record as it was.
    expect(third.commit('s5')).toBe(t2);
    expect([...(cache.begin(U, D, t2).sent(R)?.keys() ?? [])]).toEqual(['@a:hs', '@b:hs']);
    // Tags differ between processes (replicas, restarts).
    expect(new LazyMembersCache().begin(U, D, t2).sent(R)).toBeUndefined();
  });

  it('remembers only the pass that is answered, and nothing for a sync that fails', () => {
    const cache = new LazyMembersCache();
    const start = cache.begin(U, D, undefined);
    start.remember(R, [['@a:hs', '$a']]);
    const t1 = start.commit('s1');

    const failing = cache.begin(U, D, t1);
    failing.remember(R, [['@b:hs', '$b']]);
    failing.release();
    const polling = cache.begin(U, D, t1);
    expect([...(polling.sent(R)?.keys() ?? [])]).toEqual(['@a:hs']);
    polling.remember(R, [['@c:hs', '$c']]);
    polling.newPass(); // that pass was not answered; the next one is
    polling.remember(R, [['@d:hs', '$d']]);
    const t2 = polling.commit('s2');
    expect([...(cache.begin(U, D, t2).sent(R)?.keys() ?? [])]).toEqual(['@a:hs', '@d:hs']);
  });

  it('lets one of concurrent syncs of a device use its record; the other starts from nothing', () => {
    const cache = new LazyMembersCache();
    const start = cache.begin(U, D, undefined);
    start.remember(R, [['@a:hs', '$a']]);
    const t1 = start.commit('s1');

    const x = cache.begin(U, D, t1);
    const y = cache.begin(U, D, t1);
    expect(x.sent(R)?.has('@a:hs')).toBe(true);
    expect(y.sent(R)).toBeUndefined();
    x.remember(R, [['@b:hs', '$b']]);
    y.remember(R, [['@c:hs', '$c']]);
    // y began later: its answer is the one kept, whichever answers first.
    const ty = y.commit('s2');
    const tx = x.commit('s2');
    expect(cache.begin(U, D, tx).sent(R)).toBeUndefined();
    const fromY = cache.begin(U, D, ty);
    expect([...(fromY.sent(R)?.keys() ?? [])]).toEqual(['@c:hs']);
  });
});
