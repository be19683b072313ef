/**
 * Room history as another server may see it (spec: history visibility applies to the events
 * served to servers, as Synapse's filter_events_for_server does): an event the asking server's
 * users could not see when it was sent is served redacted, so that the room's graph stays whole
 * and its content stays private. /backfill and /get_missing_events answer through this.
 */
import { getRoomVersion, redactEvent, type Pdu } from '@tessera/protocol';
import { getEvent, getEvents, getSnapshotEntries, getStateBeforeEvent, type Queryable, type StoredEvent } from '@tessera/storage';

/** Whether `server` may see events sent in a state: by its history_visibility and the memberships of the server's users in it. */
async function visibleToServer(db: Queryable, event: StoredEvent, server: string): Promise<boolean> {
  // The history_visibility alone first (one entry of the snapshot): most rooms are shared, and
  // only joined/invited ones need the members of the state, which in a big room are many.
  const visibilityId = (await getSnapshotEntries(db, event.stateBeforeNid, [['m.room.history_visibility', '']])).values().next().value;
  const visibility = visibilityId ? (await getEvent(db, visibilityId))?.json.content?.history_visibility : undefined;
  // world_readable and shared (the default, and what an unknown value means) show everything.
  if (visibility !== 'invited' && visibility !== 'joined') return true;
  const state = (await getStateBeforeEvent(db, event.eventId)) ?? [];
  const memberIds = state.filter(([type, key]) => type === 'm.room.member' && key.endsWith(`:${server}`)).map(([, , id]) => id);
  const loaded = await getEvents(db, memberIds);
  const memberships = memberIds.map((id) => loaded.get(id)?.json.content?.membership);
  return memberships.some((m) => m === 'join' || (visibility === 'invited' && m === 'invite'));
}

/** The events' PDUs as `server` may see them (see above); events without a state here (outliers) as they are. */
export async function pdusAsSeenByServer(db: Queryable, roomVersion: string, events: readonly StoredEvent[], server: string): Promise<Record<string, unknown>[]> {
  const rv = getRoomVersion(roomVersion);
  const bySnapshot = new Map<number, boolean>();
  const out: Record<string, unknown>[] = [];
  for (const e of events) {
    let visible = true;
    if (e.stateBeforeNid !== null) {
      if (!bySnapshot.has(e.stateBeforeNid)) bySnapshot.set(e.stateBeforeNid, await visibleToServer(db, e, server));
      visible = bySnapshot.get(e.stateBeforeNid)!;
    }
    out.push(visible ? e.json : (redactEvent(e.json as Pdu, rv) as unknown as Record<string, unknown>));
  }
  return out;
}
