import { Inject, Injectable } from '@nestjs/common';
import { SignJWT, jwtVerify } from 'jose';
import type { Db, Queryable } from '@tessera/storage';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { StreamChanges } from '../stream-changes.js';
import { CLIENT_API_DB } from '../tokens.js';
import { randomToken, sha256Hex } from './token-hash.js';

export interface Requester {
  userId: string;
  deviceId: string;
  /** The key of this token in access_tokens (a hash; or 'jwt:' + jti). */
  tokenKey: string;
}

const JWT_AUDIENCE = 'tessera-client-api';
/** How long a token found valid is trusted without asking the database again. */
const CACHE_TTL_MS = 30_000;
const MAX_CACHED = 100_000;

/**
 * Access tokens. Opaque (default): 32 random bytes; only their SHA-256 is stored, so a leak of
 * the database leaks no usable token. JWT (optional): signed HS256 with the configured secret,
 * verified without a lookup of the token itself, but checked against the revocation list so
 * logout takes effect at once.
 *
 * A token found valid is remembered for CACHE_TTL_MS, so a request costs no query. Revocation
 * goes through revokeKeys, which drops the entry here and, through StreamChanges (relayed on
 * the bus), on every replica; a revoked key is not cached again until its revocation has
 * surely committed. If that bus message were lost, another replica would trust the token
 * until its entry expires: at most CACHE_TTL_MS.
 */
@Injectable()
export class AccessTokensService {
  private readonly jwtKey?: Uint8Array;
  /** Rate-limits last_seen writes: one per device per minute. */
  private readonly lastTouched = new Map<string, number>();
  /** token key -> who it is, until when it is trusted. */
  private readonly valid = new Map<string, { requester: Requester; until: number }>();
  /** token keys being revoked -> until when they must not be cached (their transaction may not have committed). */
  private readonly revoking = new Map<string, number>();

  constructor(
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
    @Inject(StreamChanges) private readonly changes: StreamChanges,
  ) {
    changes.listenTokensRevoked((keys) => this.forget(keys));
    if (settings.accessTokenFormat === 'jwt') {
      if (!settings.jwtAccessTokenSecret) throw new Error('access tokens as JWT need jwtAccessTokenSecret in the client-api settings');
      this.jwtKey = new TextEncoder().encode(settings.jwtAccessTokenSecret);
    }
  }

  /** Issues a token for the device (the device row must exist or be created in the same flow). */
  async issue(userId: string, deviceId: string, db: Queryable = this.db): Promise<string> {
    if (this.jwtKey) {
      const jti = randomToken(16);
      const token = await new SignJWT({ device_id: deviceId })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(userId)
        .setJti(jti)
        .setIssuedAt()
        .setIssuer(this.settings.serverName)
        .setAudience(JWT_AUDIENCE)
        .sign(this.jwtKey);
      await this.store(db, `jwt:${jti}`, userId, deviceId);
      return token;
    }
    // The syt_ prefix (as Synapse) lets secret scanners recognise a leaked token.
    const token = `syt_${Buffer.from(userId).toString('base64url')}_${randomToken(24)}`;
    await this.store(db, sha256Hex(token), userId, deviceId);
    return token;
  }

  private async store(db: Queryable, tokenKey: string, userId: string, deviceId: string): Promise<void> {
    await db.query('INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts) VALUES ($1, $2, $3, $4)', [tokenKey, userId, deviceId, Date.now()]);
  }

  /** The requester a token belongs to, or undefined when it is unknown, revoked or malformed. */
  async resolve(token: string, ip?: string): Promise<Requester | undefined> {
    const requester = this.looksLikeJwt(token) ? await this.resolveJwt(token) : await this.resolveOpaque(token);
    if (requester) this.touch(requester, ip);
    return requester;
  }

  private cached(tokenKey: string): Requester | undefined {
    const entry = this.valid.get(tokenKey);
    if (!entry) return undefined;
    if (entry.until > Date.now()) return entry.requester;
    this.valid.delete(tokenKey);
    return undefined;
  }

  private remember(requester: Requester): void {
    const now = Date.now();
    const revokedUntil = this.revoking.get(requester.tokenKey);
    if (revokedUntil !== undefined) {
      if (revokedUntil > now) return;
      this.revoking.delete(requester.tokenKey);
    }
    if (this.valid.size >= MAX_CACHED) this.valid.clear();
    this.valid.set(requester.tokenKey, { requester, until: now + CACHE_TTL_MS });
  }

  private forget(tokenKeys: string[]): void {
    const until = Date.now() + 2 * CACHE_TTL_MS;
    for (const key of tokenKeys) {
      this.valid.delete(key);
      this.revoking.set(key, until);
    }
    if (this.revoking.size > MAX_CACHED) for (const [key, t] of this.revoking) if (t < Date.now()) this.revoking.delete(key);
  }

  private looksLikeJwt(token: string): boolean {
    return this.jwtKey !== undefined && token.split('.').length === 3;
  }

  private async resolveOpaque(token: string): Promise<Requester | undefined> {
    const tokenKey = sha256Hex(token);
    const known = this.cached(tokenKey);
    if (known) return known;
    const { rows } = await this.db.query<{ user_id: string; device_id: string }>('SELECT user_id, device_id FROM access_tokens WHERE token_hash = $1', [tokenKey]);
    if (!rows[0]) return undefined;
    const requester = { userId: rows[0].user_id, deviceId: rows[0].device_id, tokenKey };
    this.remember(requester);
    return requester;
  }

  private async resolveJwt(token: string): Promise<Requester | undefined> {
    try {
      const { payload } = await jwtVerify(token, this.jwtKey!, { issuer: this.settings.serverName, audience: JWT_AUDIENCE, algorithms: ['HS256'] });
      if (typeof payload.sub !== 'string' || typeof payload.jti !== 'string' || typeof payload.device_id !== 'string') return undefined;
      const tokenKey = `jwt:${payload.jti}`;
      const known = this.cached(tokenKey);
      if (known) return known;
      const { rows } = await this.db.query('SELECT 1 FROM revoked_access_tokens WHERE jti = $1', [payload.jti]);
      if (rows.length > 0) return undefined;
      const requester = { userId: payload.sub, deviceId: payload.device_id, tokenKey };
      this.remember(requester);
      return requester;
    } catch {
      return undefined;
    }
  }

  private touch(requester: Requester, ip: string | undefined): void {
    const key = `${requester.userId}|${requester.deviceId}`;
    const now = Date.now();
    if ((this.lastTouched.get(key) ?? 0) > now - 60_000) return;
    this.lastTouched.set(key, now);
    if (this.lastTouched.size > 100_000) this.lastTouched.clear();
    this.db
      .query('UPDATE devices SET last_seen_ts = $3, last_seen_ip = COALESCE($4, last_seen_ip) WHERE user_id = $1 AND device_id = $2', [requester.userId, requester.deviceId, now, ip ?? null])
      .catch(() => undefined);
  }

  /**
   * Revokes tokens by key (inside the caller's transaction). Opaque tokens are gone with their
   * row; JWTs also go on the revocation list, since their signature stays valid.
   */
  async revokeKeys(tx: Queryable, tokenKeys: string[]): Promise<void> {
    if (tokenKeys.length === 0) return;
    // Before the delete: from now on no replica trusts a cached copy of these tokens.
    this.changes.emitTokensRevoked(tokenKeys);
    await tx.query('DELETE FROM access_tokens WHERE token_hash = ANY($1)', [tokenKeys]);
    const now = Date.now();
    for (const key of tokenKeys) {
      if (key.startsWith('jwt:')) {
        await tx.query('INSERT INTO revoked_access_tokens (jti, revoked_ts) VALUES ($1, $2) ON CONFLICT DO NOTHING', [key.slice(4), now]);
      }
    }
  }

  async tokenKeysOfDevice(tx: Queryable, userId: string, deviceId: string): Promise<string[]> {
    const { rows } = await tx.query<{ token_hash: string }>('SELECT token_hash FROM access_tokens WHERE user_id = $1 AND device_id = $2', [userId, deviceId]);
    return rows.map((r) => r.token_hash);
  }
}
