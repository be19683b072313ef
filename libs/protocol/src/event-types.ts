/**
 * Event shapes shared by the whole protocol library.
 *
 * `Pdu` is the wire form of a persistent data unit, as it is signed and sent over federation.
 * Room versions 1 and 2 carry `event_id` and list edges as [event_id, {sha256}] pairs; v3+
 * carry no event_id and list edges as plain event ids.
 *
 * `RoomEvent` is how the room algorithms (authorization, state resolution, the pipeline) see
 * an event whatever its room version: its id known, edges as lists of event ids. The state-res
 * fixtures in ../shared/matrix-spec are already in this form.
 */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export interface Pdu {
  room_id?: string;
  sender: string;
  type: string;
  state_key?: string;
  content: Record<string, any>;
  prev_events: string[] | [string, Record<string, string>][];
  auth_events: string[] | [string, Record<string, string>][];
  depth: number;
  origin_server_ts: number;
  hashes?: { sha256: string };
  signatures?: Record<string, Record<string, string>>;
  unsigned?: Record<string, any>;
  redacts?: string;
  /** Room versions 1 and 2 only. */
  event_id?: string;
  /** Present on older events; not part of the format from v11 redaction rules on. */
  origin?: string;
  [key: string]: unknown;
}

export interface RoomEvent {
  event_id: string;
  room_id?: string;
  sender: string;
  type: string;
  state_key?: string;
  content: Record<string, any>;
  prev_events: string[];
  auth_events: string[];
  depth?: number;
  origin_server_ts: number;
  redacts?: string;
  hashes?: { sha256: string };
  signatures?: Record<string, Record<string, string>>;
  unsigned?: Record<string, any>;
  [key: string]: unknown;
}

/** (type, state_key) as one string, for Map keys. NUL cannot occur in either part. */
export type StateKey = string;

export function stateKey(type: string, key: string): StateKey {
  return `${type}\u0000${key}`;
}

export function splitStateKey(k: StateKey): [type: string, stateKey: string] {
  const i = k.indexOf('\u0000');
  return [k.slice(0, i), k.slice(i + 1)];
}

/** A room state: (type, state_key) -> event id. */
export type StateMap = Map<StateKey, string>;

export function isStateEvent(e: { state_key?: unknown }): boolean {
  return typeof e.state_key === 'string';
}
