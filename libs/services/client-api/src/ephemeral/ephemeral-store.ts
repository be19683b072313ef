/**
 * What is ephemeral and shared between client-api replicas (DESIGN: Redis holds typing,
 * presence, rate limits): one interface, a Redis implementation for the distributed mode and
 * an in-memory one for the embedded default (no REDIS_URL). Tests run both.
 */
export interface RateLimitDecision {
  allowed: boolean;
  /** When refused: how long until one request would be allowed again. */
  retryAfterMs: number;
}

export interface TypingState {
  /** Users currently typing in the room (expired ones removed). */
  userIds: string[];
  /** Typing stream position of the room's last change (0 when never). */
  position: number;
}

export type PresenceValue = 'online' | 'offline' | 'unavailable';

export interface PresenceRecord {
  presence: PresenceValue;
  statusMsg?: string;
  /** Last time the user was active (ms since epoch). */
  lastActiveTs: number;
  /** Presence stream position of this record's last change. */
  position: number;
}

export interface EphemeralStore {
  /**
   * Token bucket: `burst` tokens, refilled at `perSecond`. Each call takes one token when
   * there is one; otherwise it is refused and says when to retry.
   */
  consumeRateLimit(key: string, perSecond: number, burst: number): Promise<RateLimitDecision>;

  /** A value that lives ttlMs (shared-secret registration nonces). */
  putTemporary(key: string, value: string, ttlMs: number): Promise<void>;
  /** Reads and deletes in one step, so a value is taken once. */
  takeTemporary(key: string): Promise<string | undefined>;

  /** Starts (timeoutMs > 0) or stops (timeoutMs 0) a user's typing; returns the new position. */
  setTyping(roomId: string, userId: string, timeoutMs: number): Promise<number>;
  /** Removes expired typers; when some expired, the room takes a new position (returned), else undefined. */
  expireTyping(roomId: string): Promise<number | undefined>;
  getTyping(roomId: string): Promise<TypingState>;
  currentTypingPosition(): Promise<number>;

  setPresence(userId: string, presence: PresenceValue, statusMsg: string | undefined, lastActiveTs: number): Promise<number>;
  getPresence(userId: string): Promise<PresenceRecord | undefined>;
  /** Several users' records at once (absent: never set). */
  getPresences(userIds: string[]): Promise<Map<string, PresenceRecord>>;
  /** The users whose presence changed after `since` (a /sync reads only theirs, not every room member's). */
  presenceChangedSince(since: number): Promise<string[]>;
  currentPresencePosition(): Promise<number>;

  close(): Promise<void>;
}

export const EPHEMERAL_STORE = Symbol('EPHEMERAL_STORE');
