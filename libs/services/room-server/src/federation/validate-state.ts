/**
 * Validation of a room state and its auth chain received from another server (the answer of
 * send_join, or of /state when filling a gap): every event well formed, signed by the servers
 * that must sign it, its hash checked (a mismatch keeps the redacted form), and authorized by
 * the auth events it cites, which must themselves be in the response and authorized. A
 * response that does not hold is refused as a whole: a joining server cannot tell which part
 * of a forged state is the lie.
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
  /** Every event of state and auth chain, each once, in an order where auth events come first. */
  ordered: ValidatedEvent[];
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
  checks.forEach((c, i) => {
    if (!c.ok) throw new InvalidStateResponseError(`event ${c.eventId ?? `#${i}`} of the response fails its checks: ${c.error}`);
    const event = { ...pduToRoomEvent(c.pdu, roomVersion), event_id: c.eventId };
    const roomOf = event.type === 'm.room.create' && roomVersion.roomIdIsCreateEventHash ? roomId : event.room_id;
    if (roomOf !== roomId) throw new InvalidStateResponseError(`event ${c.eventId} belongs to room ${String(event.room_id)}, not ${roomId}`);
    byId.set(c.eventId, { eventId: c.eventId, pdu: c.pdu, event });
    if (i < statePdus.length) stateIds.add(c.eventId);
  });

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
      const missing = authIds.filter((a) => !done.has(a) && !byId.has(a));
      if (missing.length > 0) throw new InvalidStateResponseError(`event ${id} cites auth events the response does not hold: ${missing.join(', ')}`);
      if (authIds.every((a) => done.has(a))) {
        ordered.push(v);
        done.add(id);
        pending.delete(id);
        progressed = true;
      }
    }
    if (!progressed) throw new InvalidStateResponseError('the auth events of the response form a cycle');
  }

  const eventOf = (id: string) => byId.get(id)?.event ?? known.get(id);
  for (const v of ordered) {
    const authEvents = v.event.auth_events.map((a) => eventOf(a)!);
    try {
      checkAuthEvents(v.event, authEvents, roomVersion);
      const authState = authIdsOf(v.event).map((a) => eventOf(a)!);
      const byKey = new Map(authState.map((a) => [stateKey(a.type, a.state_key ?? ''), a]));
      authorize(v.event, (t, k) => byKey.get(stateKey(t, k)), roomVersion);
    } catch (err) {
      if (err instanceof AuthError) throw new InvalidStateResponseError(`event ${v.eventId} (${v.event.type}) is not authorized by its auth events: ${err.message}`);
      throw err;
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
  return { ordered, state, byId };
}
