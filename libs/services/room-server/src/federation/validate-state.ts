/**
 * Validation of a room state and its auth chain received from another server (the answer of
 * send_join, or of /state when filling a gap): every event well formed, signed by the servers
 * that must sign it, its hash checked (a mismatch keeps the redacted form), and authorized by
 * the auth events it cites, which must themselves be in the response and authorized.
 *
 * An event that fails is left out (with those that depend on it through their auth events),
 * not the whole response: a room's history holds events whose keys are gone or whose signing
 * server is unreachable now, and a join must not fail for one bad member event (as Synapse and
 * Dendrite do; Complement's "unverifiable events" join tests). What is left must still hold the
 * room: a state without its create event, or a join the remaining state does not authorize, is
 * refused by the caller.
 */
import {
  AuthError, authorize, checkAuthEvents, pduToRoomEvent, roomIdForCreateEvent, stateKey,
  type Pdu, type RoomEvent, type RoomVersion,
} from '@tessera/protocol';
import type { PduVerifier } from '@tessera/federation-client';

export class InvalidStateResponseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidStateResponseError';
  }
}

export interface ValidatedEvent {
  eventId: string;
  pdu: Pdu;
  event: RoomEvent;
}

export interface ValidatedState {
  /** Every accepted event of state and auth chain, each once, in an order where auth events come first. */
  ordered: ValidatedEvent[];
  /** Events left out, with the reason (for the logs). */
  dropped: Array<{ eventId: string | undefined; reason: string }>;
  /** The state, as (type, state_key) -> event id. */
  state: Map<string, string>;
  byId: Map<string, ValidatedEvent>;
}

/**
 * `known`: events already stored and trusted here (their ids), which may be cited without
 * being in the response.
 */
export async function validateStateAndAuthChain(
  verifier: PduVerifier,
  roomId: string,
  roomVersion: RoomVersion,
  statePdus: unknown[],
  authChainPdus: unknown[],
  known: ReadonlyMap<string, RoomEvent> = new Map(),
): Promise<ValidatedState> {
  if (!Array.isArray(statePdus) || !Array.isArray(authChainPdus)) throw new InvalidStateResponseError('state and auth_chain must be lists');
  const all = [...statePdus, ...authChainPdus];
  const checks = await verifier.verifyAll(all, roomVersion);
  const byId = new Map<string, ValidatedEvent>();
  const stateIds = new Set<string>();
  const dropped: ValidatedState['dropped'] = [];
  checks.forEach((c, i) => {
    if (!c.ok) {
      dropped.push({ eventId: c.eventId, reason: c.error });
      return;
    }
    const event = { ...pduToRoomEvent(c.pdu, roomVersion), event_id: c.eventId };
    const roomOf = event.type === 'm.room.create' && roomVersion.roomIdIsCreateEventHash ? roomId : event.room_id;
    if (roomOf !== roomId) {
      dropped.push({ eventId: c.eventId, reason: `it belongs to room ${String(event.room_id)}` });
      return;
    }
    byId.set(c.eventId, { eventId: c.eventId, pdu: c.pdu, event });
    if (i < statePdus.length) stateIds.add(c.eventId);
  });
  const drop = (id: string, reason: string) => {
    byId.delete(id);
    stateIds.delete(id);
    dropped.push({ eventId: id, reason });
  };

  // From room v12 the create event is never cited: the room id names it, and every other event
  // depends on it as if it were an auth event.
  const createId = roomVersion.roomIdIsCreateEventHash ? `$${roomId.slice(1)}` : undefined;
  const authIdsOf = (e: RoomEvent): string[] => (createId && e.type !== 'm.room.create' ? [...e.auth_events, createId] : e.auth_events);

  // Auth order: an event after every auth event it cites (Kahn over the auth DAG).
  const ordered: ValidatedEvent[] = [];
  const done = new Set<string>(known.keys());
  const pending = new Map(byId);
  while (pending.size > 0) {
    let progressed = false;
    for (const [id, v] of pending) {
      const authIds = authIdsOf(v.event);
      // Not in the response, or left out: this event cannot be authorized either.
      const missing = authIds.filter((a) => !done.has(a) && !byId.has(a));
      if (missing.length > 0) {
        pending.delete(id);
        drop(id, `it cites auth events not held or left out: ${missing.join(', ')}`);
        progressed = true;
        continue;
      }
      if (authIds.every((a) => done.has(a))) {
        ordered.push(v);
        done.add(id);
        pending.delete(id);
        progressed = true;
      }
    }
    if (!progressed) {
      for (const id of pending.keys()) drop(id, 'its auth events form a cycle');
      break;
    }
  }

  // In auth order: an event citing one refused before it is refused too.
  const eventOf = (id: string) => byId.get(id)?.event ?? known.get(id);
  const accepted: ValidatedEvent[] = [];
  for (const v of ordered) {
    const refusedAuth = authIdsOf(v.event).find((a) => eventOf(a) === undefined);
    if (refusedAuth !== undefined) {
      drop(v.eventId, `its auth event ${refusedAuth} was left out`);
      continue;
    }
    try {
      checkAuthEvents(v.event, v.event.auth_events.map((a) => eventOf(a)!), roomVersion);
      const authState = authIdsOf(v.event).map((a) => eventOf(a)!);
      const byKey = new Map(authState.map((a) => [stateKey(a.type, a.state_key ?? ''), a]));
      authorize(v.event, (t, k) => byKey.get(stateKey(t, k)), roomVersion);
      accepted.push(v);
    } catch (err) {
      if (!(err instanceof AuthError)) throw err;
      drop(v.eventId, `it is not authorized by its auth events: ${err.message}`);
    }
  }

  const state = new Map<string, string>();
  for (const id of stateIds) {
    const e = byId.get(id)!.event;
    if (typeof e.state_key !== 'string') throw new InvalidStateResponseError(`event ${id} in the state is not a state event`);
    const k = stateKey(e.type, e.state_key);
    if (state.has(k)) throw new InvalidStateResponseError(`the state holds two events for (${e.type}, ${e.state_key})`);
    state.set(k, id);
  }
  const create = state.get(stateKey('m.room.create', ''));
  if (!create) throw new InvalidStateResponseError('the state has no m.room.create event');
  if (roomVersion.roomIdIsCreateEventHash && roomIdForCreateEvent(byId.get(create)!.pdu, roomVersion) !== roomId) {
    throw new InvalidStateResponseError(`the create event does not define room ${roomId}`);
  }
  return { ordered: accepted, dropped, state, byId };
}
