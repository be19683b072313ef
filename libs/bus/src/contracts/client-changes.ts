/**
 * `client.changes` (publish/subscribe, no queue group): client-api tells its other replicas
 * what it changed in its own streams, so that a /sync long-polling on any replica wakes up and
 * caches that are per replica drop what went stale. Like stream.events it carries positions
 * and ids, never the only copy of data: a replica that misses one answers later (at its
 * client's next sync or timeout) from the stores, which are the truth.
 */
export const CLIENT_CHANGES = 'client.changes';

/** A client-api stream moved (the union of client-api's StreamChange). */
export type ClientStreamChange =
  | { stream: 'account_data'; position: number; userId: string }
  | { stream: 'to_device'; position: number; userId: string; deviceIds: string[] }
  | { stream: 'device_lists'; position: number; userId: string }
  /** userId: whose receipt moved (their unread counts start over); absent from older senders. */
  | { stream: 'receipts'; position: number; roomId: string; userId?: string }
  | { stream: 'typing'; position: number; roomId: string }
  | { stream: 'presence'; position: number; userId: string };

export interface ClientChangeMessage {
  /** The replica that made the change; it ignores its own messages (it already acted on them). */
  origin: string;
  /** A stream moved: wake the /syncs it concerns (the user's, or the room's members'). */
  stream?: ClientStreamChange;
  /** Access tokens revoked, by their stored key (a hash, never the token): drop cached copies. */
  revokedTokenKeys?: string[];
  /** A device's one-time or fallback keys changed: its /sync key counts are stale. */
  keyCounts?: { userId: string; deviceId: string };
}
