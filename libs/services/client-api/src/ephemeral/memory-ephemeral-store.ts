import type { EphemeralStore, PresenceRecord, PresenceValue, RateLimitDecision, TypingState } from './ephemeral-store.js';

/** The embedded default: one process, so plain maps are the shared state. */
export class MemoryEphemeralStore implements EphemeralStore {
  private readonly buckets = new Map<string, { tokens: number; updatedMs: number }>();
  private readonly temporary = new Map<string, { value: string; expiresMs: number }>();
  private readonly typing = new Map<string, { typers: Map<string, number>; position: number }>();
  private typingPosition = 0;
  private readonly presence = new Map<string, PresenceRecord>();
  private presencePosition = 0;

  constructor(private readonly now: () => number = Date.now) {}

  async consumeRateLimit(key: string, perSecond: number, burst: number): Promise<RateLimitDecision> {
    const now = this.now();
    const bucket = this.buckets.get(key) ?? { tokens: burst, updatedMs: now };
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.updatedMs) / 1000) * perSecond);
    bucket.updatedMs = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true, retryAfterMs: 0 };
    }
    return { allowed: false, retryAfterMs: Math.ceil(((1 - bucket.tokens) / perSecond) * 1000) };
  }

  async putTemporary(key: string, value: string, ttlMs: number): Promise<void> {
    this.temporary.set(key, { value, expiresMs: this.now() + ttlMs });
  }

  async takeTemporary(key: string): Promise<string | undefined> {
    const entry = this.temporary.get(key);
    this.temporary.delete(key);
    if (!entry || entry.expiresMs < this.now()) return undefined;
    return entry.value;
  }

  private room(roomId: string) {
    let room = this.typing.get(roomId);
    if (!room) {
      room = { typers: new Map(), position: 0 };
      this.typing.set(roomId, room);
    }
    return room;
  }

  async setTyping(roomId: string, userId: string, timeoutMs: number): Promise<number> {
    const room = this.room(roomId);
    if (timeoutMs > 0) room.typers.set(userId, this.now() + timeoutMs);
    else room.typers.delete(userId);
    room.position = ++this.typingPosition;
    return room.position;
  }

  async expireTyping(roomId: string): Promise<number | undefined> {
    const room = this.typing.get(roomId);
    if (!room) return undefined;
    const now = this.now();
    let expired = false;
    for (const [userId, expiresMs] of room.typers) {
      if (expiresMs <= now) {
        room.typers.delete(userId);
        expired = true;
      }
    }
    if (!expired) return undefined;
    room.position = ++this.typingPosition;
    return room.position;
  }

  async getTyping(roomId: string): Promise<TypingState> {
    const room = this.typing.get(roomId);
    if (!room) return { userIds: [], position: 0 };
    const now = this.now();
    return { userIds: [...room.typers].filter(([, expiresMs]) => expiresMs > now).map(([userId]) => userId), position: room.position };
  }

  async currentTypingPosition(): Promise<number> {
    return this.typingPosition;
  }

  async setPresence(userId: string, presence: PresenceValue, statusMsg: string | undefined, lastActiveTs: number): Promise<number> {
    const position = ++this.presencePosition;
    this.presence.set(userId, { presence, statusMsg, lastActiveTs, position });
    return position;
  }

  async getPresence(userId: string): Promise<PresenceRecord | undefined> {
    const record = this.presence.get(userId);
    return record && { ...record };
  }

  async getPresences(userIds: string[]): Promise<Map<string, PresenceRecord>> {
    const out = new Map<string, PresenceRecord>();
    for (const id of userIds) {
      const record = await this.getPresence(id);
      if (record) out.set(id, record);
    }
    return out;
  }

  async presenceChangedSince(since: number): Promise<string[]> {
    return [...this.presence].filter(([, r]) => r.position > since).map(([id]) => id);
  }

  async currentPresencePosition(): Promise<number> {
    return this.presencePosition;
  }

  async close(): Promise<void> {}
}
