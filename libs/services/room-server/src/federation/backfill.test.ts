import { describe, expect, it } from 'vitest';
import { getRoomVersion, type RoomEvent } from '@tessera/protocol';
import { authorizeByAuthEvents } from './backfill.js';

const rv = getRoomVersion('10');
const room = '!r:a.example';

function ev(id: string, type: string, sender: string, auth: string[], extra: Partial<RoomEvent> = {}): RoomEvent {
  return { event_id: id, room_id: room, type, sender, content: {}, prev_events: [], auth_events: auth, depth: 1, origin_server_ts: 1, ...extra };
}

const create = ev('$create', 'm.room.create', '@alice:a.example', [], { state_key: '', content: { creator: '@alice:a.example', room_version: '10' } });
const join = ev('$join', 'm.room.member', '@alice:a.example', ['$create'], { state_key: '@alice:a.example', content: { membership: 'join' }, prev_events: ['$create'] });

describe('authorizeByAuthEvents (backfilled events against their own auth events)', () => {
  it('accepts what its auth events allow, refuses the rest, and cannot judge what cites unknown auth events', () => {
    const pool = new Map<string, RoomEvent>([
      ['$ok', ev('$ok', 'm.room.message', '@alice:a.example', ['$create', '$join'])],
      ['$stranger', ev('$stranger', 'm.room.message', '@bob:b.example', ['$create'])],
      ['$orphan', ev('$orphan', 'm.room.message', '@alice:a.example', ['$create', '$unknown'])],
      // Cites a refused event as an auth event: refused too.
      ['$chained', ev('$chained', 'm.room.message', '@alice:a.example', ['$create', '$badjoin'])],
      ['$badjoin', ev('$badjoin', 'm.room.member', '@bob:b.example', ['$create'], { state_key: '@carol:c.example', content: { membership: 'join' } })],
    ]);
    const trusted = new Map([[create.event_id, create], [join.event_id, join]]);
    const verdicts = authorizeByAuthEvents(pool, trusted, rv, room);
    expect(verdicts.get('$ok')).toBeNull();
    expect(typeof verdicts.get('$stranger')).toBe('string');
    expect(verdicts.has('$orphan')).toBe(true);
    expect(verdicts.get('$orphan')).toBeUndefined();
    expect(typeof verdicts.get('$badjoin')).toBe('string');
    expect(verdicts.get('$chained')).toMatch(/auth event \$badjoin is rejected/);
  });

  it('judges fetched auth events the same way: an event is accepted through a chain of them', () => {
    const pool = new Map<string, RoomEvent>([
      ['$create', create],
      ['$join', join],
      ['$msg', ev('$msg', 'm.room.message', '@alice:a.example', ['$create', '$join'])],
    ]);
    const verdicts = authorizeByAuthEvents(pool, new Map(), rv, room);
    expect([...verdicts.values()]).toEqual([null, null, null]);
  });
});
