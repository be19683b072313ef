import type { SyncPositions } from '../sync-token.js';
import type { RoomConfig } from './sliding-sync-request.js';
import { newNonce, type SlidingPos } from './sliding-pos.js';

/** What a connection was last sent of one room: the base of the room's next delta. */
export interface SentRoom {
  /** The stream position the room's timeline and state were sent up to. */
  upTo: number;
  membership: string;
  /** The combined config it was sent with (a wider one later sends the room again in full). */
  config: RoomConfig;
  /** The required_state sent: `type \0 state_key` -> event id. */
  state: ReadonlyMap<string, string>;
  /** The room fields sent, as their JSON, to send only what changed. */
  fields: Readonly<Record<string, string>>;
}

/** One response's record: what the client holds once it sends that response's pos. */
export interface Generation {
  positions: SyncPositions;
  rooms: ReadonlyMap<string, SentRoom>;
  /** The room subscriptions in force: a client may send one once and keep it (matrix-js-sdk does), until unsubscribe_rooms. */
  subscriptions: ReadonlyMap<string, RoomConfig>;
  /** Each list's count as sent (a change is news for a long poll). */
  listCounts: Readonly<Record<string, number>>;
}

interface Connection {
  nonce: string;
  generations: Map<number, Generation>;
  next: number;
}

/**
 * The per-connection record of what was sent (MSC4186 "Connections"), in memory, keyed by
 * user, device and conn_id. Each response adds a generation; a request with a pos may be
 * retried (the client cancelled it), so the generation it names stays until a later pos is
 * used, and older ones go then. Bounded: the least recently used connections are forgotten
 * (their pos then answers M_UNKNOWN_POS and the client starts again), and so are the oldest
 * generations beyond a few. Records are per process: a pos taken to another replica is unknown there.
 */
export class ConnectionStore {
  private readonly connections = new Map<string, Connection>();

  constructor(
    private readonly maxConnections = 10_000,
    private readonly maxGenerations = 4,
  ) {}

  static key(userId: string, deviceId: string, connId: string): string {
    return `${userId}\u0000${deviceId}\u0000${connId}`;
  }

  /** A new connection under this key (an earlier one's pos tokens become unknown). */
  start(key: string): { nonce: string } {
    const connection: Connection = { nonce: newNonce(), generations: new Map(), next: 1 };
    this.connections.delete(key);
    this.connections.set(key, connection);
    this.evict();
    return { nonce: connection.nonce };
  }

  /** The generation a pos names, if this connection still has it; generations before it are dropped (the client has moved on). */
  resume(key: string, pos: SlidingPos): Generation | undefined {
    const connection = this.connections.get(key);
    if (!connection || connection.nonce !== pos.nonce) return undefined;
    const generation = connection.generations.get(pos.generation);
    if (!generation) return undefined;
    for (const g of connection.generations.keys()) if (g < pos.generation) connection.generations.delete(g);
    // Recently used: move to the end of the eviction order.
    this.connections.delete(key);
    this.connections.set(key, connection);
    return generation;
  }

  /** Records a response's generation; its number, or undefined when the connection was replaced or forgotten meanwhile. */
  commit(key: string, nonce: string, generation: Generation): number | undefined {
    const connection = this.connections.get(key);
    if (!connection || connection.nonce !== nonce) return undefined;
    const number = connection.next++;
    connection.generations.set(number, generation);
    while (connection.generations.size > this.maxGenerations) connection.generations.delete(connection.generations.keys().next().value!);
    return number;
  }

  get size(): number {
    return this.connections.size;
  }

  private evict(): void {
    while (this.connections.size > this.maxConnections) this.connections.delete(this.connections.keys().next().value!);
  }
}
