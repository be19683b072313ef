import { describe, expect, it } from 'vitest';
import { passesFilters, roomsInRanges, sortByActivity, type ListRoom } from './room-list.js';

const room = (roomId: string, activity: number, extra: Partial<ListRoom> = {}): ListRoom => ({ roomId, membership: 'join', activity, isDm: false, roomType: null, encrypted: false, ...extra });

describe('room list', () => {
  it('orders by activity, newest first, the room id breaking ties', () => {
    const sorted = sortByActivity([room('!a', 5), room('!c', 9), room('!b', 5), room('!d', 1)]);
    expect(sorted.map((r) => r.roomId)).toEqual(['!c', '!a', '!b', '!d']);
  });

  it('slices inclusive ranges, clipped to the list, merged and in list order', () => {
    const sorted = ['r0', 'r1', 'r2', 'r3', 'r4'];
    expect(roomsInRanges(sorted, [[0, 2]])).toEqual(['r0', 'r1', 'r2']);
    expect(roomsInRanges(sorted, [[3, 99]])).toEqual(['r3', 'r4']);
    expect(roomsInRanges(sorted, [[4, 4], [0, 1], [1, 2]])).toEqual(['r0', 'r1', 'r2', 'r4']);
    expect(roomsInRanges(sorted, [[7, 9]])).toEqual([]);
    expect(roomsInRanges(sorted, undefined)).toEqual(sorted);
    expect(roomsInRanges([], [[0, 19]])).toEqual([]);
  });

  it('filters by DM, invite, encryption and room type (not_room_types winning)', () => {
    const dm = room('!dm', 1, { isDm: true });
    const invite = room('!inv', 1, { membership: 'invite' });
    const space = room('!space', 1, { roomType: 'm.space', encrypted: true });
    const unknownType = room('!remote', 1, { membership: 'invite', roomType: undefined, encrypted: undefined });
    expect(passesFilters(dm, { isDm: true })).toBe(true);
    expect(passesFilters(space, { isDm: true })).toBe(false);
    expect(passesFilters(space, { isDm: false })).toBe(true);
    expect(passesFilters(invite, { isInvite: true })).toBe(true);
    expect(passesFilters(dm, { isInvite: true })).toBe(false);
    expect(passesFilters(space, { isEncrypted: true })).toBe(true);
    expect(passesFilters(dm, { isEncrypted: true })).toBe(false);
    expect(passesFilters(space, { roomTypes: ['m.space'] })).toBe(true);
    expect(passesFilters(dm, { roomTypes: ['m.space'] })).toBe(false);
    expect(passesFilters(dm, { roomTypes: [null] })).toBe(true);
    expect(passesFilters(space, { notRoomTypes: ['m.space'] })).toBe(false);
    expect(passesFilters(space, { roomTypes: ['m.space'], notRoomTypes: ['m.space'] })).toBe(false);
    expect(passesFilters(unknownType, { notRoomTypes: ['m.space'] })).toBe(true);
    expect(passesFilters(unknownType, {})).toBe(true);
  });

  it('spaces: only children of the given spaces; tags OR-ed, not_tags winning over tags', () => {
    const r = room('!child', 1, { tags: new Set(['m.favourite', 'u.work']) });
    const untagged = room('!plain', 1);
    expect(passesFilters(r, { spaces: ['!space'] }, { spaceChildren: new Set(['!child']) })).toBe(true);
    expect(passesFilters(untagged, { spaces: ['!space'] }, { spaceChildren: new Set(['!child']) })).toBe(false);
    expect(passesFilters(r, { spaces: ['!unknown'] })).toBe(false);
    expect(passesFilters(r, { tags: ['u.other', 'm.favourite'] })).toBe(true);
    expect(passesFilters(untagged, { tags: ['m.favourite'] })).toBe(false);
    expect(passesFilters(r, { tags: ['m.favourite'], notTags: ['u.work'] })).toBe(false);
    expect(passesFilters(r, { notTags: ['m.lowpriority'] })).toBe(true);
    expect(passesFilters(untagged, { notTags: ['m.favourite'] })).toBe(true);
  });
});
