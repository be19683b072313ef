/**
 * Room affinity for room-server replicas (DESIGN: "rooms routed by a hash of the room id for
 * cache locality, correctness guarded by the append sequence").
 *
 * A room belongs to one of ROOM_PARTITIONS partitions (a hash of its id). A request about a room
 * goes to `<subject>.p<partition>`, which only the replica owning that partition listens on, so
 * one replica sees all of a room's sends: its cached view stays current (no reload per send),
 * queued sends are decided together as a chain, and replicas stop refusing each other's
 * appends as stale. Ownership is rendezvous hashing over the live replicas, which announce
 * themselves on ROOMSERVER_REPLICAS (libs/services/room-server/src/partition-ownership.ts).
 *
 * Affinity is an optimisation only: when no replica listens on a partition (one just died, or
 * replicas are still finding each other) the request falls back to the plain subject's queue
 * group, and any replica decides it; the sequence guard keeps that correct.
 */
import { BUS_NO_RESPONDERS, BusError } from './errors.js';
import type { BusTransport, RequestOptions } from './transport.js';

/** Enough partitions to spread rooms evenly over a handful of replicas. */
export const ROOM_PARTITIONS = 32;

/**
 * Publish/subscribe among room-server replicas: ReplicaAnnouncement every heartbeat, and once
 * with `leaving: true` on a clean stop. No queue group: every replica hears every other.
 */
export const ROOMSERVER_REPLICAS = 'roomserver.replicas';

export interface ReplicaAnnouncement {
  /** A random id the replica chose at start. */
  replicaId: string;
  /** The replica stops: its partitions go to the others now rather than when it expires. */
  leaving?: boolean;
  /** The sender just started: replicas that hear it answer with their own announcement at once. */
  hello?: boolean;
}

/** FNV-1a, 32 bits: cheap, stable across processes and versions (routing must agree everywhere). */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function roomPartition(roomId: string): number {
  return fnv1a(roomId) % ROOM_PARTITIONS;
}

export function partitionSubject(subject: string, partition: number): string {
  return `${subject}.p${partition}`;
}

/** The live replica that owns a partition: the highest hash of (partition, replica). Every replica computes the same answer from the same set. */
export function partitionOwner(partition: number, replicaIds: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const id of replicaIds) {
    const score = fnv1a(`${partition}/${id}`);
    if (score > bestScore || (score === bestScore && id < best!)) {
      best = id;
      bestScore = score;
    }
  }
  return best;
}

/**
 * A request about one room: to the replica owning the room's partition, else (nobody listens
 * there) to any replica of the subject's queue group. Without a room id (createRoom) it goes to
 * the queue group directly.
 */
export async function requestForRoom<Req, Res>(
  bus: BusTransport,
  subject: string,
  roomId: string | undefined,
  payload: Req,
  options?: RequestOptions,
): Promise<Res> {
  if (typeof roomId === 'string' && roomId !== '') {
    try {
      return await bus.request<Req, Res>(partitionSubject(subject, roomPartition(roomId)), payload, options);
    } catch (err) {
      if (!(err instanceof BusError && err.code === BUS_NO_RESPONDERS)) throw err;
    }
  }
  return bus.request<Req, Res>(subject, payload, options);
}
