import { describe, expect, it } from 'vitest';
import { decodePaginationToken } from '../rooms/pagination-token.js';
import { decodeSyncToken } from '../sync-token.js';
import { ConnectionStore } from './connection-store.js';
import { decodeSlidingPos, encodeSlidingPos, newNonce, NONCE_LENGTH } from './sliding-pos.js';

const positions = { events: 42, account_data: 7, to_device: 3, device_lists: 9, receipts: 0, typing: 12, presence: 5 };
const empty = { positions, rooms: new Map(), subscriptions: new Map(), listCounts: {} };

describe('sliding sync pos', () => {
  it('round-trips positions, nonce and generation', () => {
    const nonce = newNonce();
    expect(nonce).toMatch(new RegExp(`^[0-9a-z]{${NONCE_LENGTH}}$`));
    for (const generation of [1, 35, 36, 123_456]) {
      const pos = encodeSlidingPos({ positions, nonce, generation });
      expect(decodeSlidingPos(pos)).toEqual({ positions, nonce, generation });
    }
  });

  it('is a /sync token that /messages and /keys/changes take', () => {
    const pos = encodeSlidingPos({ positions, nonce: 'abcdefgh', generation: 2 });
    expect(pos).toBe('s42_7_3_9_0_12_5~abcdefgh2');
    expect(decodeSyncToken(pos)).toEqual(positions);
    expect(decodePaginationToken(pos, 'from')).toBe(42);
  });

  it('rejects what is not a pos of this server', () => {
    for (const junk of ['', 'nonsense', 's42_7_3_9_0_12_5', 's42~abc', 's42~abcdefgh', 't42', 's42_x~abcdefgh1', 's42~ABCDEFGH1']) {
      expect(decodeSlidingPos(junk), junk).toBeUndefined();
    }
  });
});

describe('ConnectionStore', () => {
  const key = ConnectionStore.key('@a:hs', 'DEV', '');

  it('resumes the generation a pos names, again on a retry, and drops older ones once a later pos is used', () => {
    const store = new ConnectionStore();
    const { nonce } = store.start(key);
    const g1 = store.commit(key, nonce, empty)!;
    const g2 = store.commit(key, nonce, { ...empty, listCounts: { all: 2 } })!;
    expect(store.resume(key, { positions, nonce, generation: g1 })).toBe(empty);
    expect(store.resume(key, { positions, nonce, generation: g1 })).toBe(empty); // a retried request
    expect(store.resume(key, { positions, nonce, generation: g2 })?.listCounts).toEqual({ all: 2 });
    expect(store.resume(key, { positions, nonce, generation: g1 })).toBeUndefined(); // the client moved on
  });

  it('knows nothing of other keys, other nonces, or a connection started again', () => {
    const store = new ConnectionStore();
    const { nonce } = store.start(key);
    const g = store.commit(key, nonce, empty)!;
    expect(store.resume(ConnectionStore.key('@b:hs', 'DEV', ''), { positions, nonce, generation: g })).toBeUndefined();
    expect(store.resume(key, { positions, nonce: 'zzzzzzzz', generation: g })).toBeUndefined();
    const again = store.start(key);
    expect(store.resume(key, { positions, nonce, generation: g })).toBeUndefined();
    expect(store.commit(key, nonce, empty)).toBeUndefined(); // a request of the replaced connection
    expect(store.commit(key, again.nonce, empty)).toBe(1);
  });

  it('is bounded: least recently used connections and the oldest generations go', () => {
    const store = new ConnectionStore(2, 2);
    const a = store.start('a');
    const ga = store.commit('a', a.nonce, empty)!;
    store.start('b');
    expect(store.resume('a', { positions, nonce: a.nonce, generation: ga })).toBe(empty); // a is now the most recent
    store.start('c');
    expect(store.size).toBe(2);
    expect(store.resume('a', { positions, nonce: a.nonce, generation: ga })).toBe(empty);
    const g2 = store.commit('a', a.nonce, empty)!;
    store.commit('a', a.nonce, empty);
    expect(store.resume('a', { positions, nonce: a.nonce, generation: ga })).toBeUndefined();
    expect(store.resume('a', { positions, nonce: a.nonce, generation: g2 })).toBe(empty);
  });
});
