import { describe, expect, it } from 'vitest';
import type { AccountDataService } from './account-data.service.js';
import { hiddenByIgnore, IGNORED_USER_LIST, IgnoredUsers, ignoredUsersOf } from './ignored-users.js';

/** The one read IgnoredUsers makes of the account data, counted. */
function accountData(content: () => Record<string, unknown> | undefined) {
  const store = { reads: 0, async get() { store.reads++; return content(); } };
  return store;
}
const list = (...users: string[]) => ({ ignored_users: Object.fromEntries(users.map((u) => [u, {}])) });
const changes = (position: number, ...global: Array<Record<string, unknown>>) => ({ position, global: global.map((content) => ({ type: IGNORED_USER_LIST, content })), rooms: {} });

describe('ignored users', () => {
  it('reads the user ids of ignored_users and nothing else', () => {
    expect([...ignoredUsersOf(list('@a:x', 'not a user'))]).toEqual(['@a:x']);
    expect(ignoredUsersOf({ ignored_users: ['@a:x'] }).size).toBe(0);
    expect(ignoredUsersOf(undefined).size).toBe(0);
  });

  it('withholds events of ignored senders but state events', () => {
    const ignored = new Set(['@bob:x']);
    expect(hiddenByIgnore(ignored, { sender: '@bob:x', stateKey: null })).toBe(true);
    expect(hiddenByIgnore(ignored, { sender: '@bob:x', stateKey: '' })).toBe(false);
    expect(hiddenByIgnore(ignored, { sender: '@chris:x', stateKey: null })).toBe(false);
  });

  it('keeps a list current from the sync\'s own account data changes, and reads it when its record may be stale', async () => {
    let stored: Record<string, unknown> | undefined = list('@bob:x');
    const store = accountData(() => stored);
    const users = new IgnoredUsers(store as unknown as AccountDataService);
    // Initial sync: the changes are all the account data.
    expect([...(await users.forSync('@a:x', undefined, 10, changes(10, list('@bob:x'))))]).toEqual(['@bob:x']);
    // Incremental, nothing moved: the record answers.
    expect([...(await users.forSync('@a:x', 10, 10, undefined))]).toEqual(['@bob:x']);
    // Moved, without a change to the list: still the record.
    expect([...(await users.forSync('@a:x', 10, 12, changes(12)))]).toEqual(['@bob:x']);
    expect(store.reads).toBe(0);
    // A change in range wins.
    expect([...(await users.forSync('@a:x', 12, 15, changes(15, list('@chris:x'))))]).toEqual(['@chris:x']);
    expect(store.reads).toBe(0);
    // A token past the record (another replica answered in between): read again.
    stored = list();
    expect((await users.forSync('@a:x', 20, 21, changes(21))).size).toBe(0);
    expect(store.reads).toBe(1);
  });
});
