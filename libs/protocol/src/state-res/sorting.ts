/**
 * The orderings of state resolution v2 (spec: "Reverse topological power ordering",
 * "Mainline ordering").
 */
import type { RoomEvent } from '../event-types.js';
import type { RoomVersion } from '../room-versions.js';
import { PowerContext } from '../auth/power-levels.js';
import type { EventSource } from './event-source.js';
import { MinHeap } from './heap.js';

/** Compares event ids as the spec does: by code point (UTF-16 order agrees for ids). */
function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Kahn's algorithm over `graph` (event -> the events it depends on, all within the graph),
 * choosing at each step the smallest ready event by `less`. Earliest first.
 */
export function lexicographicalTopologicalSort(graph: ReadonlyMap<string, Iterable<string>>, less: (a: string, b: string) => boolean): string[] {
  const waitingOn = new Map<string, number>();
  const dependents = new Map<string, string[]>();
  for (const [id, parents] of graph) {
    let n = 0;
    for (const p of new Set(parents)) {
      if (!graph.has(p) || p === id) continue;
      n++;
      let list = dependents.get(p);
      if (!list) dependents.set(p, (list = []));
      list.push(id);
    }
    waitingOn.set(id, n);
  }
  const ready = new MinHeap<string>(less);
  for (const [id, n] of waitingOn) if (n === 0) ready.push(id);
  const sorted: string[] = [];
  while (ready.size > 0) {
    const id = ready.pop()!;
    sorted.push(id);
    for (const child of dependents.get(id) ?? []) {
      const n = waitingOn.get(child)! - 1;
      waitingOn.set(child, n);
      if (n === 0) ready.push(child);
    }
  }
  // A cycle (impossible for valid auth DAGs) leaves events out; keep them, in id order, last.
  if (sorted.length < graph.size) {
    const seen = new Set(sorted);
    sorted.push(...[...graph.keys()].filter((id) => !seen.has(id)).sort(compareIds));
  }
  return sorted;
}

/** The m.room.power_levels event among an event's auth events, if any. */
export function powerLevelsAuthEvent(event: RoomEvent, events: EventSource): RoomEvent | undefined {
  for (const id of event.auth_events) {
    const e = events.get(id);
    if (e && e.type === 'm.room.power_levels' && e.state_key === '') return e;
  }
  return undefined;
}

/**
 * The create event an event's power is read against: from its auth events, or (v12, where it
 * is never cited) the event its room id names.
 */
export function createEventFor(event: RoomEvent, events: EventSource, roomVersion: RoomVersion): RoomEvent | undefined {
  if (roomVersion.roomIdIsCreateEventHash) {
    if (event.type === 'm.room.create') return event;
    return typeof event.room_id === 'string' ? events.get(`$${event.room_id.slice(1)}`) : undefined;
  }
  for (const id of event.auth_events) {
    const e = events.get(id);
    if (e && e.type === 'm.room.create') return e;
  }
  return undefined;
}

/** The sender's power level as the event's own auth events say (v12: creators are infinite). */
export function senderPowerLevel(event: RoomEvent, events: EventSource, roomVersion: RoomVersion): number {
  const power = new PowerContext(powerLevelsAuthEvent(event, events), createEventFor(event, events, roomVersion), roomVersion);
  return power.userLevel(event.sender);
}

export function reverseTopologicalPowerSort(eventIds: Iterable<string>, events: EventSource, roomVersion: RoomVersion): string[] {
  const graph = new Map<string, string[]>();
  const key = new Map<string, { power: number; ts: number }>();
  for (const id of eventIds) {
    const event = events.get(id);
    if (!event) continue;
    graph.set(id, event.auth_events);
    key.set(id, { power: senderPowerLevel(event, events, roomVersion), ts: event.origin_server_ts });
  }
  return lexicographicalTopologicalSort(graph, (a, b) => {
    const ka = key.get(a)!;
    const kb = key.get(b)!;
    if (ka.power !== kb.power) return ka.power > kb.power;
    if (ka.ts !== kb.ts) return ka.ts < kb.ts;
    return a < b;
  });
}

/**
 * Mainline ordering based on the power levels event `powerLevelsId`: events whose power level
 * ancestry meets the mainline nearer its root come first, then by origin_server_ts, event id.
 */
export function mainlineSort(eventIds: Iterable<string>, powerLevelsId: string | undefined, events: EventSource): string[] {
  // Index in the mainline, P0 (the resolved power levels) = 0.
  const mainline = new Map<string, number>();
  let p = powerLevelsId ? events.get(powerLevelsId) : undefined;
  while (p && !mainline.has(p.event_id)) {
    mainline.set(p.event_id, mainline.size);
    p = powerLevelsAuthEvent(p, events);
  }
  // Mainline position reached by walking from a power levels event (itself included).
  const positionFrom = new Map<string, number>();
  const positionOf = (event: RoomEvent): number => {
    const walked: string[] = [];
    let current = powerLevelsAuthEvent(event, events);
    let position = Infinity;
    while (current) {
      const known = mainline.get(current.event_id) ?? positionFrom.get(current.event_id);
      if (known !== undefined) {
        position = known;
        break;
      }
      walked.push(current.event_id);
      current = powerLevelsAuthEvent(current, events);
      if (current && walked.includes(current.event_id)) break;
    }
    for (const id of walked) positionFrom.set(id, position);
    return position;
  };
  const keyed: Array<{ id: string; position: number; ts: number }> = [];
  for (const id of eventIds) {
    const event = events.get(id);
    if (event) keyed.push({ id, position: positionOf(event), ts: event.origin_server_ts });
  }
  keyed.sort((a, b) => (a.position !== b.position ? b.position - a.position || 0 : a.ts !== b.ts ? a.ts - b.ts : compareIds(a.id, b.id)));
  return keyed.map((k) => k.id);
}
