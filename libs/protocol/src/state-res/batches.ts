/**
 * Resolving state from batches of PDUs, the way the ruma-state-res fixtures are fed and the
 * state-resolve tool reads files: each batch is resolved together with the state so far, every
 * PDU of the batch as its own one-entry state map.
 */
import { isStateEvent, stateKey, type RoomEvent, type StateMap } from '../event-types.js';
import type { RoomVersion } from '../room-versions.js';
import { eventSourceOf, type EventSource } from './event-source.js';
import { resolveState } from './resolve.js';

function singleEntryMaps(batch: RoomEvent[]): StateMap[] {
  return batch.filter(isStateEvent).map((e) => new Map([[stateKey(e.type, e.state_key!), e.event_id]]));
}

export function resolveBatches(roomVersion: RoomVersion, batches: RoomEvent[][], events?: EventSource): StateMap {
  const source = events ?? eventSourceOf(batches.flat());
  let state: StateMap = new Map();
  for (const batch of batches) {
    state = resolveState(roomVersion, [state, ...singleEntryMaps(batch)], source);
  }
  return state;
}

/** All PDUs at once: one resolution over a one-entry state map per state event. */
export function resolveAllAtOnce(roomVersion: RoomVersion, pdus: RoomEvent[], events?: EventSource): StateMap {
  return resolveState(roomVersion, [new Map(), ...singleEntryMaps(pdus)], events ?? eventSourceOf(pdus));
}

/**
 * Event by event along prev_events: the state before an event is the resolution of the states
 * after its prev_events; the state after a state event is resolve([before, before + event]),
 * so an event the rules refuse drops out. The result resolves the states after the leaves.
 */
export function resolveEventByEvent(roomVersion: RoomVersion, pdus: RoomEvent[], events?: EventSource): StateMap {
  const source = events ?? eventSourceOf(pdus);
  const after = new Map<string, StateMap>();
  const referenced = new Set<string>();
  for (const pdu of pdus) {
    const prevStates = pdu.prev_events.map((id) => after.get(id)).filter((s): s is StateMap => s !== undefined);
    for (const id of pdu.prev_events) referenced.add(id);
    const before = resolveState(roomVersion, prevStates, source);
    if (!isStateEvent(pdu)) {
      after.set(pdu.event_id, before);
      continue;
    }
    const withEvent = new Map(before).set(stateKey(pdu.type, pdu.state_key!), pdu.event_id);
    after.set(pdu.event_id, resolveState(roomVersion, [before, withEvent], source));
  }
  const leaves = pdus.filter((p) => !referenced.has(p.event_id)).map((p) => after.get(p.event_id)!);
  return resolveState(roomVersion, leaves, source);
}
