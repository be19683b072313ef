/**
 * What the decider knows about a room at one sequence: current state (ids), forward
 * extremities with their depths and state snapshots. Cached per room and replaced after each
 * append this replica makes; any other replica's append makes it stale, which the sequence
 * guard detects (persistence refuses, the decider reloads). The cache is an optimisation only.
 */
import type { Pdu, RoomEvent, RoomVersion, StateMap } from '@tessera/protocol';
import { getRoomVersion, pduToRoomEvent, stateKey } from '@tessera/protocol';
import { getCurrentState, getEvents, getForwardExtremities, getRoom, getRoomSequence, loadSnapshot, type Db, type StoredEvent } from '@tessera/storage';

export interface RoomExtremity {
  eventId: string;
  depth: number;
  stateAfterNid: number | null;
}

export interface RoomView {
  roomId: string;
  roomVersion: RoomVersion;
  sequence: number;
  state: StateMap;
  extremities: RoomExtremity[];
}

export function tripleMap(triples: [string, string, string][]): StateMap {
  return new Map(triples.map(([t, k, id]) => [stateKey(t, k), id]));
}

/** A small LRU of immutable things (events, snapshots). Redaction changes a stored event: callers evict it. */
export class Lru<K, V> {
  private map = new Map<K, V>();
  constructor(private readonly max: number) {}
  get(k: K): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }
  set(k: K, v: V): void {
    this.map.delete(k);
    this.map.set(k, v);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value as K);
  }
  delete(k: K): void {
    this.map.delete(k);
  }
}

export class RoomStore {
  private readonly views = new Map<string, RoomView>();
  private readonly events = new Lru<string, { event: RoomEvent; stored: StoredEvent }>(50_000);
  private readonly snapshots = new Lru<number, StateMap>(2_000);

  constructor(readonly db: Db) {}

  /** The cached view, or a fresh one from the database; null for an unknown room. */
  async view(roomId: string): Promise<RoomView | null> {
    return this.views.get(roomId) ?? this.reload(roomId);
  }

  /**
   * The cached view if the room has not moved since (one cheap query), else a fresh one.
   * Another replica's append makes a cached view stale; finding out here costs one query,
   * finding out from persistence's sequence guard costs a whole append round trip.
   */
  async freshView(roomId: string): Promise<RoomView | null> {
    const cached = this.views.get(roomId);
    if (cached && (await getRoomSequence(this.db, roomId)) === cached.sequence) return cached;
    return this.reload(roomId);
  }

  async reload(roomId: string): Promise<RoomView | null> {
    this.views.delete(roomId);
    const room = await getRoom(this.db, roomId);
    if (!room) return null;
    const [state, extremities] = await Promise.all([getCurrentState(this.db, roomId), getForwardExtremities(this.db, roomId)]);
    const view: RoomView = {
      roomId,
      roomVersion: getRoomVersion(room.roomVersion),
      sequence: room.sequence,
      state: tripleMap(state),
      extremities,
    };
    // A concurrent append may have moved the room between the queries: a stale view is
    // harmless (the append's sequence check refuses it) but must not be kept.
    const again = await getRoom(this.db, roomId);
    if (again?.sequence === room.sequence) this.views.set(roomId, view);
    return view;
  }

  remember(view: RoomView): void {
    this.views.set(view.roomId, view);
  }

  forget(roomId: string): void {
    this.views.delete(roomId);
  }

  /** Stored events as RoomEvents (any status). Unknown ids are absent from the result. */
  async getEvents(ids: Iterable<string>, roomVersion: RoomVersion): Promise<Map<string, { event: RoomEvent; stored: StoredEvent }>> {
    const out = new Map<string, { event: RoomEvent; stored: StoredEvent }>();
    const missing: string[] = [];
    for (const id of new Set(ids)) {
      const hit = this.events.get(id);
      if (hit) out.set(id, hit);
      else missing.push(id);
    }
    if (missing.length > 0) {
      for (const [id, stored] of await getEvents(this.db, missing)) {
        const event = { ...pduToRoomEvent(stored.json as Pdu, roomVersion), event_id: id };
        const entry = { event, stored };
        this.events.set(id, entry);
        out.set(id, entry);
      }
    }
    return out;
  }

  cacheEvent(event: RoomEvent, stored: StoredEvent): void {
    this.events.set(event.event_id, { event, stored });
  }

  evictEvent(id: string): void {
    this.events.delete(id);
  }

  async snapshot(nid: number | null): Promise<StateMap> {
    if (nid === null) return new Map();
    const hit = this.snapshots.get(nid);
    if (hit) return hit;
    const state = tripleMap(await loadSnapshot(this.db, nid));
    this.snapshots.set(nid, state);
    return state;
  }
}
