import { describe, expect, it } from 'vitest';
import { scopedRooms } from './sliding-extensions.js';
import { MAX_TIMEOUT_MS, parseSlidingSyncRequest } from './sliding-sync-request.js';

const errcode = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return (error as { errcode?: string }).errcode;
  }
  return undefined;
};

describe('sliding sync request', () => {
  it('reads the shape Element X sends: pos and timeout in the query, ranges, pairs, extensions', () => {
    const req = parseSlidingSyncRequest(
      {
        conn_id: 'room-list',
        lists: { all: { ranges: [[0, 19]], timeline_limit: 1, required_state: [['m.room.name', '']], filters: { is_dm: true, is_invite: false, not_room_types: ['m.space'] } } },
        room_subscriptions: { '!a:hs': { timeline_limit: 20, required_state: [['*', '*']] } },
        extensions: { to_device: { enabled: true, since: '12' }, e2ee: { enabled: true }, account_data: { enabled: true, lists: ['all'] }, receipts: { enabled: false }, typing: { enabled: true } },
      },
      { pos: 's1~abcdefgh1', timeout: '30000' },
    );
    expect(req.connId).toBe('room-list');
    expect(req.pos).toBe('s1~abcdefgh1');
    expect(req.timeoutMs).toBe(30_000);
    expect(req.lists.get('all')).toMatchObject({ ranges: [[0, 19]], config: { timelineLimit: 1 }, filters: { isDm: true, isInvite: false, notRoomTypes: ['m.space'] } });
    expect(req.subscriptions.get('!a:hs')?.timelineLimit).toBe(20);
    expect(req.extensions).toEqual({ e2ee: true, toDevice: { since: 12, limit: 100 }, accountData: { lists: ['all'] }, typing: {} });
  });

  it('reads the MSC current shape: range, pos and timeout in the body, is_invited', () => {
    const req = parseSlidingSyncRequest({ pos: 'p', timeout: 10, lists: { l: { range: [2, 5], timeline_limit: 500, required_state: { include: [{}] }, filters: { is_invited: true } } } }, {});
    expect(req.pos).toBe('p');
    expect(req.timeoutMs).toBe(10);
    expect(req.lists.get('l')).toMatchObject({ ranges: [[2, 5]], config: { timelineLimit: 100 }, filters: { isInvite: true } });
  });

  it('defaults: no pos, no wait, no range meaning the whole list, nothing enabled', () => {
    const req = parseSlidingSyncRequest(undefined, {});
    expect(req).toMatchObject({ connId: '', timeoutMs: 0, unsubscribeRooms: [], extensions: { e2ee: false } });
    expect(req.pos).toBeUndefined();
    expect(parseSlidingSyncRequest({ lists: { l: {} } }, {}).lists.get('l')?.ranges).toBeUndefined();
    expect(parseSlidingSyncRequest({}, { timeout: '99999999' }).timeoutMs).toBe(MAX_TIMEOUT_MS);
  });

  it('answers malformed requests with the spec errors', () => {
    expect(errcode(() => parseSlidingSyncRequest([], {}))).toBe('M_BAD_JSON');
    expect(errcode(() => parseSlidingSyncRequest({ lists: { l: { ranges: [[3, 1]] } } }, {}))).toBe('M_INVALID_PARAM');
    expect(errcode(() => parseSlidingSyncRequest({ lists: { l: { ranges: [[-1, 1]] } } }, {}))).toBe('M_BAD_JSON');
    expect(errcode(() => parseSlidingSyncRequest({ lists: { l: { timeline_limit: 'ten' } } }, {}))).toBe('M_BAD_JSON');
    expect(errcode(() => parseSlidingSyncRequest({}, { timeout: 'soon' }))).toBe('M_INVALID_PARAM');
    expect(errcode(() => parseSlidingSyncRequest({ room_subscriptions: { 'not-a-room': {} } }, {}))).toBe('M_INVALID_PARAM');
    const many = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`l${i}`, {}]));
    expect(errcode(() => parseSlidingSyncRequest({ lists: many }, {}))).toBe('M_INVALID_PARAM');
    expect(errcode(() => parseSlidingSyncRequest({ extensions: { to_device: { enabled: true, since: 'x' } } }, {}))).toBe('M_INVALID_PARAM');
  });

  it('scopes room extensions to the named lists and subscriptions, or all of them', () => {
    const covered = { lists: new Map([['a', ['!1', '!2']], ['b', ['!3']]]), subscriptions: ['!9'] };
    expect([...scopedRooms(covered, {})].sort()).toEqual(['!1', '!2', '!3', '!9']);
    expect([...scopedRooms(covered, { lists: ['b'] })]).toEqual(['!3']);
    expect([...scopedRooms(covered, { lists: ['*'], rooms: [] })].sort()).toEqual(['!1', '!2', '!3']);
    expect([...scopedRooms(covered, { rooms: ['*'] })]).toEqual(['!9']);
  });

  it('reads the spaces, tags and not_tags filters, and refuses them when not lists of strings', () => {
    const req = parseSlidingSyncRequest({ lists: { l: { filters: { spaces: ['!s:hs'], tags: ['m.favourite'], not_tags: ['m.lowpriority'] } } } }, {});
    expect(req.lists.get('l')!.filters).toEqual({ spaces: ['!s:hs'], tags: ['m.favourite'], notTags: ['m.lowpriority'] });
    for (const filters of [{ spaces: '!s:hs' }, { tags: [1] }, { not_tags: [null] }]) {
      expect(() => parseSlidingSyncRequest({ lists: { l: { filters } } }, {})).toThrow(/must be a list of strings/);
    }
  });
});
