import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';
import { MemoryEphemeralStore } from './memory-ephemeral-store.js';
import type { EphemeralStore, PresenceRecord, PresenceValue, RateLimitDecision, TypingState } from './ephemeral-store.js';

/**
 * Token bucket in one atomic script, so concurrent replicas never both take the last token.
 * Time comes from Redis (TIME), one clock for every replica.
 * Returns {allowed 0/1, retry_after_ms}.
 */
const RATE_LIMIT_SCRIPT = `
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - ts) / 1000 * rate)
local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = math.ceil((1 - tokens) / rate * 1000)
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 1000)
return {allowed, retry}
`;

/** Removes expired typers; bumps the room's position when any were removed. Returns the new position or -1. */
const EXPIRE_TYPING_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local removed = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if removed == 0 then return -1 end
local pos = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[3], pos)
return pos
`;

const SET_TYPING_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local timeout = tonumber(ARGV[2])
if timeout > 0 then
  redis.call('ZADD', KEYS[1], now + timeout, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], timeout + 60000)
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
local pos = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[3], pos)
return pos
`;

const GET_TYPING_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local users = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
local pos = redis.call('GET', KEYS[2])
return {users, pos or '0'}
`;

export interface RedisEphemeralStoreOptions {
  url: string;
  /** Key prefix: deployments and test runs sharing a Redis never collide. */
  prefix?: string;
}

export class RedisEphemeralStore implements EphemeralStore {
  private readonly redis: Redis;
  private readonly prefix: string;

  constructor(options: RedisEphemeralStoreOptions) {
    // Loaded on first use: the embedded default (no Redis) never pays for the client's code.
    const { Redis: RedisClient } = createRequire(import.meta.url)('ioredis') as typeof import('ioredis');
    this.redis = new RedisClient(options.url, { lazyConnect: false, maxRetriesPerRequest: 3 });
    // Without a listener a lost connection would crash the process; ioredis reconnects by itself.
    this.redis.on('error', (error: Error) => console.warn(`redis: ${error.message}`));
    this.prefix = options.prefix ?? 'tessera:';
  }

  private key(...parts: string[]): string {
    return this.prefix + parts.join(':');
  }

  async consumeRateLimit(key: string, perSecond: number, burst: number): Promise<RateLimitDecision> {
    const [allowed, retry] = (await this.redis.eval(RATE_LIMIT_SCRIPT, 1, this.key('ratelimit', key), perSecond, burst)) as [number, number];
    return { allowed: allowed === 1, retryAfterMs: retry };
  }

  async putTemporary(key: string, value: string, ttlMs: number): Promise<void> {
    await this.redis.set(this.key('tmp', key), value, 'PX', ttlMs);
  }

  async takeTemporary(key: string): Promise<string | undefined> {
    const value = await this.redis.getdel(this.key('tmp', key));
    return value ?? undefined;
  }

  private typingKeys(roomId: string): [string, string, string] {
    return [this.key('typing', roomId), this.key('typing-position'), this.key('typing-room-position', roomId)];
  }

  async setTyping(roomId: string, userId: string, timeoutMs: number): Promise<number> {
    return Number(await this.redis.eval(SET_TYPING_SCRIPT, 3, ...this.typingKeys(roomId), userId, timeoutMs));
  }

  async expireTyping(roomId: string): Promise<number | undefined> {
    const position = Number(await this.redis.eval(EXPIRE_TYPING_SCRIPT, 3, ...this.typingKeys(roomId)));
    return position < 0 ? undefined : position;
  }

  async getTyping(roomId: string): Promise<TypingState> {
    const [typers, , roomPosition] = this.typingKeys(roomId);
    const [userIds, position] = (await this.redis.eval(GET_TYPING_SCRIPT, 2, typers, roomPosition)) as [string[], string];
    return { userIds, position: Number(position) };
  }

  async currentTypingPosition(): Promise<number> {
    return Number((await this.redis.get(this.key('typing-position'))) ?? 0);
  }

  async setPresence(userId: string, presence: PresenceValue, statusMsg: string | undefined, lastActiveTs: number): Promise<number> {
    const position = await this.redis.incr(this.key('presence-position'));
    const record: PresenceRecord = { presence, statusMsg, lastActiveTs, position };
    // The record, and the user's last change in a sorted set by position (one entry per user).
    await this.redis.multi().set(this.key('presence', userId), JSON.stringify(record)).zadd(this.key('presence-changes'), position, userId).exec();
    return position;
  }

  async getPresences(userIds: string[]): Promise<Map<string, PresenceRecord>> {
    const out = new Map<string, PresenceRecord>();
    if (userIds.length === 0) return out;
    const texts = await this.redis.mget(userIds.map((id) => this.key('presence', id)));
    texts.forEach((text, i) => {
      if (text !== null) out.set(userIds[i]!, JSON.parse(text) as PresenceRecord);
    });
    return out;
  }

  async presenceChangedSince(since: number): Promise<string[]> {
    return this.redis.zrangebyscore(this.key('presence-changes'), `(${since}`, '+inf');
  }

  async getPresence(userId: string): Promise<PresenceRecord | undefined> {
    const text = await this.redis.get(this.key('presence', userId));
    return text === null ? undefined : (JSON.parse(text) as PresenceRecord);
  }

  async currentPresencePosition(): Promise<number> {
    return Number((await this.redis.get(this.key('presence-position'))) ?? 0);
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

export function createEphemeralStore(redisUrl: string | undefined, prefix?: string): EphemeralStore {
  return redisUrl ? new RedisEphemeralStore({ url: redisUrl, prefix }) : new MemoryEphemeralStore();
}
