import { describe, expect, it } from 'vitest';
import { BusError } from './errors.js';
import { createInProcessBus } from './in-process.js';
import { STALE_SEQUENCE, type AppendRequest } from './contracts/persistence.js';
import type { StreamEventNotification } from './contracts/stream.js';
import { handleOn, healthSubject, publishOn, QueueGroups, requestOn, Subjects, subscribeOn } from './subjects.js';
import { waitFor } from './transport-contract.js';

describe('subject catalog', () => {
  it('names every subject with valid dot-separated tokens, each once', () => {
    const names = [...Object.values(Subjects), healthSubject('room-server')];
    for (const name of names) expect(name).toMatch(/^[a-z-]+(\.[a-z-]+)+$/);
    expect(new Set(names).size).toBe(names.length);
  });

  it('carries typed contracts through a transport, errors included', async () => {
    const bus = createInProcessBus();
    try {
      await handleOn(bus, Subjects.persistenceAppend, async (req) => {
        if (req.expectedSequence !== 3) throw new BusError(STALE_SEQUENCE, 'room moved on', { currentSequence: 3 });
        return { sequence: 4, events: [] };
      }, { queue: QueueGroups.persistence });
      const request: AppendRequest = { roomId: '!r:example.org', roomVersion: '11', expectedSequence: 3, events: [], currentStateChanges: [] };
      expect(await requestOn(bus, Subjects.persistenceAppend, request)).toEqual({ sequence: 4, events: [] });
      await expect(requestOn(bus, Subjects.persistenceAppend, { ...request, expectedSequence: 2 })).rejects.toMatchObject({
        code: STALE_SEQUENCE,
        details: { currentSequence: 3 },
      });

      const seen: StreamEventNotification[] = [];
      await subscribeOn(bus, Subjects.streamEvents, (n) => void seen.push(n));
      const note: StreamEventNotification = {
        position: 10, previousPosition: 9, roomId: '!r:example.org', eventId: '$e', type: 'm.room.member', stateKey: '@a:example.org',
        sender: '@a:example.org', originServerTs: 1, local: true, roomVersion: '11', addsState: [['m.room.member', '@a:example.org', '$e']],
        membership: { userId: '@a:example.org', membership: 'join' },
      };
      await publishOn(bus, Subjects.streamEvents, note);
      await waitFor(() => seen.length === 1);
      expect(seen[0]).toEqual(note);
    } finally {
      await bus.close();
    }
  });
});
