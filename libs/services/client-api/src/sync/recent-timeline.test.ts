import type { StreamEventNotification } from '@tessera/bus';
import type { Db } from '@tessera/storage';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RecentTimeline } from './recent-timeline.js';
import { UnreadCounts } from './unread-counts.js';

// The chain logic never reads the database; the loaders that do are covered by the /sync tests.
const noDb = {} as Db;

function note(position: number, previousPosition: number, extra: Partial<StreamEventNotification> = {}): StreamEventNotification {
  return {
    position,
    previousPosition,
    roomId: '!r:hs',
    eventId: `$e${position}`,
    type: 'm.room.message',
    sender: '@a:hs',
    originServerTs: 0,
    local: true,
    roomVersion: '11',
    addsState: [],
    ...extra,
  };
}

describe('RecentTimeline', () => {
  afterEach(() => vi.useRealTimers());

  it('covers the positions whose chain of previousPosition is unbroken', () => {
    const t = new RecentTimeline(noDb);
    t.start(10);
    t.add(note(11, 10));
    t.add(note(13, 11, { roomId: '!other:hs' }));
    expect(t.range()).toEqual({ floor: 10, complete: 13 });
    expect(t.eventsBetween(10, 13)?.map((n) => n.position)).toEqual([11, 13]);
    expect(t.eventsBetween(11, 13, new Set(['!r:hs']))).toEqual([]);
    // Before the start or beyond the last notification: not covered (the database answers).
    expect(t.eventsBetween(9, 13)).toBeUndefined();
    expect(t.eventsBetween(10, 14)).toBeUndefined();
  });

  it('holds a notification that arrives before the one it follows, then takes both in order', () => {
    const t = new RecentTimeline(noDb);
    t.start(0);
    t.add(note(2, 1));
    expect(t.range().complete).toBe(0);
    t.add(note(1, 0));
    expect(t.eventsBetween(0, 2)?.map((n) => n.position)).toEqual([1, 2]);
    t.add(note(1, 0)); // a repeat changes nothing
    expect(t.eventsBetween(0, 2)?.map((n) => n.position)).toEqual([1, 2]);
    t.stop();
  });

  it('restarts after a notification that never comes, covering only what follows it', () => {
    vi.useFakeTimers();
    const t = new RecentTimeline(noDb);
    t.start(0);
    t.add(note(1, 0));
    t.add(note(3, 2)); // 2 is lost
    expect(t.range()).toEqual({ floor: 0, complete: 1 });
    vi.advanceTimersByTime(2500);
    expect(t.range()).toEqual({ floor: 2, complete: 3 });
    expect(t.eventsBetween(0, 3)).toBeUndefined();
    expect(t.eventsBetween(2, 3)?.map((n) => n.position)).toEqual([3]);
    t.stop();
  });

  it('keeps a bounded window: the floor rises as old notifications go', () => {
    const t = new RecentTimeline(noDb);
    t.start(0);
    for (let p = 1; p <= 5000; p++) t.add(note(p, p - 1));
    const { floor, complete } = t.range();
    expect(complete).toBe(5000);
    expect(floor).toBeGreaterThan(0);
    expect(t.eventsBetween(floor - 1, complete)).toBeUndefined();
    expect(t.eventsBetween(floor, complete)?.length).toBe(complete - floor);
  });
});

describe('UnreadCounts', () => {
  it('carries a count forward: others\' messages add, the user\'s own event resets', () => {
    const counts = new UnreadCounts();
    counts.remember('@me:hs', '!r:hs', 10, 2);
    const events = [note(11, 10, { sender: '@b:hs' }), note(12, 11, { sender: '@b:hs', type: 'm.room.topic', stateKey: '' }), note(13, 12, { sender: '@b:hs' })];
    expect(counts.carryForward('@me:hs', '!r:hs', 13, (after) => events.filter((e) => e.position > after))).toBe(4);
    const mine = [note(14, 13, { sender: '@me:hs' }), note(15, 14, { sender: '@b:hs', type: 'm.room.encrypted' })];
    expect(counts.carryForward('@me:hs', '!r:hs', 15, (after) => mine.filter((e) => e.position > after))).toBe(1);
  });

  it('knows nothing without a counted start, when the events are not at hand, or after a receipt', () => {
    const counts = new UnreadCounts();
    expect(counts.carryForward('@me:hs', '!r:hs', 5, () => [])).toBeUndefined();
    counts.remember('@me:hs', '!r:hs', 5, 1);
    expect(counts.carryForward('@me:hs', '!r:hs', 6, () => undefined)).toBeUndefined();
    counts.forgetRoom('!r:hs');
    expect(counts.carryForward('@me:hs', '!r:hs', 5, () => [])).toBeUndefined();
  });
});
