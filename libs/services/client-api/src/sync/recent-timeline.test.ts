import type { StreamEventNotification } from '@tessera/bus';
import type { Db } from '@tessera/storage';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RecentTimeline } from './recent-timeline.js';
import { RoomTally, tallyEvents, UnreadCounts } from './unread-counts.js';

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

  it('covers a quiet room from its own floor while busy rooms push the copy\'s floor up', () => {
    const t = new RecentTimeline(noDb);
    t.start(0);
    t.add(note(1, 0, { roomId: '!quiet:hs' }));
    for (let p = 2; p <= 6000; p++) t.add(note(p, p - 1, { roomId: `!busy${p % 7}:hs` }));
    t.add(note(6001, 6000, { roomId: '!quiet:hs' }));
    const { floor } = t.range();
    expect(floor).toBeGreaterThan(1);
    // The quiet room's first event went out of the copy: the room is covered after it, not before.
    expect(t.eventsBetween(0, 6001, new Set(['!quiet:hs']))).toBeUndefined();
    expect(t.eventsBetween(1, 6001, new Set(['!quiet:hs']))?.map((n) => n.position)).toEqual([6001]);
    expect(t.eventsBetween(1, 6000, new Set(['!quiet:hs']))).toEqual([]);
    // A room never seen is covered from the copy's floor only; a busy room from its last dropped entry.
    expect(t.eventsBetween(1, 6001, new Set(['!unknown:hs']))).toBeUndefined();
    expect(t.eventsBetween(floor, 6001, new Set(['!unknown:hs']))).toEqual([]);
    expect(t.eventsBetween(1, 6001, new Set(['!busy1:hs']))).toBeUndefined();
    // Several rooms come out in position order, the same whichever way they are gathered.
    const both = new Set(['!quiet:hs', '!busy3:hs']);
    const got = t.eventsBetween(5990, 6001, both)!.map((n) => n.position);
    expect(got).toEqual([...got].sort((a, b) => a - b));
    expect(got).toEqual(t.eventsBetween(5990, 6001)!.filter((n) => both.has(n.roomId)).map((n) => n.position));
  });
});

describe('UnreadCounts', () => {
  const ev = (streamPos: number, sender: string, content: Record<string, unknown> = {}) => ({ streamPos, sender, json: { type: 'm.room.message', sender, content } });
  const notifyAll = () => ({ notify: true, highlight: false });
  const thread = (root: string) => ({ 'm.relates_to': { rel_type: 'm.thread', event_id: root } });

  it('tallies by the evaluation, per thread; the user\'s own event resets every partition', () => {
    const tally = tallyEvents(new RoomTally(13), '@me:hs', [ev(11, '@b:hs'), ev(12, '@b:hs', thread('$root')), ev(13, '@b:hs')], (e) => ({
      notify: true,
      highlight: (e.content as Record<string, unknown>).body === 'hi me',
    }));
    expect(tally.total()).toEqual({ notification_count: 3, highlight_count: 0 });
    expect(tally.main()).toEqual({ notification_count: 2, highlight_count: 0 });
    expect(tally.threads()).toEqual({ $root: { notification_count: 1, highlight_count: 0 } });
    const next = tallyEvents(tally.copy(15), '@me:hs', [ev(14, '@me:hs'), ev(15, '@b:hs', { body: 'hi me' })], (e) => ({ notify: false, highlight: (e.content as Record<string, unknown>).body === 'hi me' }));
    expect(next.main()).toEqual({ notification_count: 0, highlight_count: 1 });
    expect(next.threads()).toEqual({});
    expect(tally.total()).toEqual({ notification_count: 3, highlight_count: 0 }); // the copy left the original alone
  });

  it('skips what the receipts cover per partition', () => {
    const tally = tallyEvents(new RoomTally(4), '@me:hs', [ev(1, '@b:hs'), ev(2, '@b:hs', thread('$t')), ev(3, '@b:hs'), ev(4, '@b:hs', thread('$t'))], notifyAll, (t) => (t === 'main' ? 1 : 3));
    expect(tally.main().notification_count).toBe(1);
    expect(tally.threads()).toEqual({ $t: { notification_count: 1, highlight_count: 0 } });
  });

  it('remembers per user and room; a receipt forgets its user\'s counts and outdates counts begun before it', () => {
    const counts = new UnreadCounts();
    const stamp = counts.stamp('!r:hs');
    counts.remember('@me:hs', '!r:hs', new RoomTally(5), stamp);
    expect(counts.get('@me:hs', '!r:hs')?.position).toBe(5);
    counts.forget('!r:hs', '@other:hs');
    expect(counts.get('@me:hs', '!r:hs')?.position).toBe(5);
    counts.forget('!r:hs', '@me:hs');
    expect(counts.get('@me:hs', '!r:hs')).toBeUndefined();
    counts.remember('@me:hs', '!r:hs', new RoomTally(6), stamp);
    expect(counts.get('@me:hs', '!r:hs')).toBeUndefined();
  });
});
