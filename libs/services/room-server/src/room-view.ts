/**
 * What the decider knows about a room at one sequence: current state (ids), forward
 * extremities with their depths and state snapshots. Cached per room and replaced after each
 * append this replica makes; any other replica's append makes it stale, which the sequence
 * guard detects (persistence refuses, the decider reloads). The cache is an optimisation only.
 */
import type { Pdu, RoomEvent, RoomVersion, StateMap } from '@tessera/protocol';
import { getRoomVersion, pduToRoomEvent, stateKey } from '@tessera/protocol';
import { getEvents, getRoomHeads, loadSnapshots, type Db, type RoomHead, type StoredEvent } from '@tessera/storage';

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
  /** Without refreshing its recency. */
  peek(k: K): V | undefined {
    return this.map.get(k);
  }
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

/**
 * Collects the keys asked for while a read is in flight and reads them together in the next
 * one, so that many concurrent callers cost one query instead of one each. Each key carries an
 * argument; `merge` combines the arguments of one key asked for twice in one batch.
 */
export class BatchLoader<K, A, V> {
  private pending = new Map<K, { arg: A; waiting: Array<{ resolve: (v: V | undefined) => void; reject: (e: unknown) => void }> }>();
  private reading = false;

  constructor(
    private readonly merge: (key: K, a: A, b: A) => A,
    private readonly read: (batch: Map<K, A>) => Promise<Map<K, V>>,
  ) {}

  load(key: K, arg: A): Promise<V | undefined> {
    return new Promise((resolve, reject) => {
      const entry = this.pending.get(key);
      if (entry) {
        entry.arg = this.merge(key, entry.arg, arg);
        entry.waiting.push({ resolve, reject });
      } else {
        this.pending.set(key, { arg, waiting: [{ resolve, reject }] });
      }
      if (!this.reading) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.reading = true;
    try {
      while (this.pending.size > 0) {
        const batch = this.pending;
        this.pending = new Map();
        try {
          const found = await this.read(new Map([...batch].map(([k, e]) => [k, e.arg])));
          for (const [k, e] of batch) for (const w of e.waiting) w.resolve(found.get(k));
        } catch (err) {
          for (const e of batch.values()) for (const w of e.waiting) w.reject(err);
        }
      }
    } finally {
      this.reading = false;
    }
  }
}

export class RoomStore {
  /** Bounded: a replica keeps the views of the rooms it serves, not of every room it ever saw (ownership moves). */
  private readonly views = new Lru<string, RoomView>(20_000);
  private readonly events = new Lru<string, { event: RoomEvent; stored: StoredEvent }>(50_000);
  private readonly snapshots = new Lru<number, StateMap>(5_000);

  constructor(readonly db: Db) {}

  /** The cached view, or a fresh one from the database; null for an unknown room. */
  async view(roomId: string): Promise<RoomView | null> {
    return this.views.get(roomId) ?? this.reload(roomId);
  }

  async reload(roomId: string): Promise<RoomView | null> {
    this.views.delete(roomId);
    return this.viewFromHead(roomId, await this.heads.load(roomId, null));
  }

  /**
   * Heads asked for while a read is in flight go together in the next read: one statement for
   * many rooms reloading at once instead of one each (an answer read a little later is only fresher).
   */
  private readonly heads = new BatchLoader<string, null, RoomHead>(() => null, (batch) => getRoomHeads(this.db, [...batch.keys()]));

  /** Stored events and snapshots read for many concurrent sends together (see BatchLoader). */
  private readonly storedEvents = new BatchLoader<string, null, StoredEvent>(() => null, (batch) => getEvents(this.db, [...batch.keys()]));
  private readonly snapshotTriples = new BatchLoader<number, null, [string, string, string][]>(() => null, (batch) => loadSnapshots(this.db, [...batch.keys()]));

  private viewFromHead(roomId: string, head: RoomHead | undefined): RoomView | null {
    if (!head) {
      this.views.delete(roomId);
      return null;
    }
    const view: RoomView = {
      roomId,
      roomVersion: getRoomVersion(head.roomVersion),
      sequence: head.sequence,
      state: tripleMap(head.state),
      extremities: head.extremities,
    };
    // A view this replica moved meanwhile with its own append is newer: keep that one.
    const cached = this.views.peek(roomId);
    if (!cached || cached.sequence < view.sequence) this.views.set(roomId, view);
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
      const loaded = await Promise.all(missing.map((id) => this.storedEvents.load(id, null)));
      for (const stored of loaded) {
        if (!stored) continue;
        const id = stored.eventId;
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

  /** The state a snapshot holds, when the caller knows it (it built that state): no load later. */
  cacheSnapshot(nid: number | null, state: StateMap): void {
    if (nid !== null) this.snapshots.set(nid, state);
  }

  async snapshot(nid: number | null): Promise<StateMap> {
    if (nid === null) return new Map();
    const hit = this.snapshots.get(nid);
    if (hit) return hit;
    const state = tripleMap((await this.snapshotTriples.load(nid, null)) ?? []);
    this.snapshots.set(nid, state);
    return state;
  }
}
