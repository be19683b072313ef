import { Inject, Injectable } from '@nestjs/common';
import type { Db, Queryable } from '@tessera/storage';
import { MatrixError } from '../errors.js';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { CLIENT_API_DB } from '../tokens.js';
import { AccessTokensService } from './access-tokens.service.js';
import { randomToken, sha256Hex } from './token-hash.js';

export interface RefreshablePair {
  access_token: string;
  refresh_token: string;
  expires_in_ms: number;
}

/**
 * Refresh tokens (spec v1.3+, POST /refresh; as Synapse). A client that asks for one at login
 * or registration (`refresh_token: true`) gets an access token that expires after
 * refreshableAccessTokenLifetimeMs and a refresh token that exchanges for a new pair.
 *
 * Rotation, as the spec words it: "the old refresh token remains valid until the new access
 * token or refresh token is used, at which point the old refresh token is revoked". So a
 * client whose /refresh answer was lost can refresh again with the old token (the unused
 * successor is then replaced), and requests in flight with the old access token keep working
 * until the new pair is first used (or the old access token expires), when the old refresh
 * token and its access tokens are revoked (AccessTokensService.retirePredecessor) through the
 * same cache revocation as logout, on every replica.
 *
 * Refresh tokens are always opaque (`syr_...`, stored as SHA-256), whatever the access token
 * format: they are single-use and revocable, which a self-contained token cannot be. With JWT
 * access tokens, a refreshable JWT carries `exp` and is checked against its row on each cache
 * miss (so the rotation applies to it too); non-refreshable JWTs are unchanged.
 *
 * Lifetimes, as Synapse's settings of the same names: refreshableAccessTokenLifetimeMs (access
 * tokens of a pair), refreshTokenLifetimeMs (how long a refresh token may be used; unset: until
 * it is used), nonrefreshableAccessTokenLifetimeMs (access tokens issued without a refresh
 * token; unset: no expiry) and sessionLifetimeMs (the whole login, refreshes included: fixed at
 * login, carried along the chain in session_expires_ts, and no token outlives it).
 *
 * A refresh token past its expiry (or its session's) is answered 401 M_UNKNOWN_TOKEN with
 * soft_logout: true. Synapse answers 403 M_FORBIDDEN there, but the spec documents only 401 for
 * /refresh ("unknown, or already used"), and says a failed refresh without soft_logout: true
 * means "logged out": the client would discard its encryption keys and device, though the device
 * still exists here. With soft_logout: true it logs in again to the same device_id (spec, "Soft
 * logout"), which ends the old tokens of that device. Expired rows are removed after a retention
 * period by TokenCleanupService; a token presented after that is unknown (soft_logout: false).
 */
@Injectable()
export class RefreshTokensService {
  constructor(
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
    @Inject(AccessTokensService) private readonly tokens: AccessTokensService,
  ) {}

  /**
   * A new refresh token and its expiring access token for the device (inside the caller's
   * transaction). `previous`: the refresh token it replaces, whose session end it keeps; without
   * it a new session starts.
   */
  async issuePair(
    tx: Queryable,
    userId: string,
    deviceId: string,
    previous: { key: string; sessionExpiresTs: number | null } | null = null,
  ): Promise<RefreshablePair & { refreshKey: string }> {
    // syr_ as Synapse, so secret scanners recognise a leaked refresh token.
    const refreshToken = `syr_${Buffer.from(userId).toString('base64url')}_${randomToken(24)}`;
    const refreshKey = sha256Hex(refreshToken);
    const now = Date.now();
    const { sessionLifetimeMs, refreshTokenLifetimeMs, refreshableAccessTokenLifetimeMs } = this.settings;
    const sessionExpiresTs = previous ? previous.sessionExpiresTs : sessionLifetimeMs !== undefined ? now + sessionLifetimeMs : null;
    const refreshExpiresTs = capped(refreshTokenLifetimeMs !== undefined ? now + refreshTokenLifetimeMs : null, sessionExpiresTs);
    const accessExpiresTs = capped(now + refreshableAccessTokenLifetimeMs, sessionExpiresTs)!;
    await tx.query(
      'INSERT INTO refresh_tokens (token_hash, user_id, device_id, created_ts, prev_token_hash, expires_ts, session_expires_ts) VALUES ($1, $2, $3, $4, $5, $6, $7)',
      [refreshKey, userId, deviceId, now, previous?.key ?? null, refreshExpiresTs, sessionExpiresTs],
    );
    const accessToken = await this.tokens.issue(userId, deviceId, tx, { expiresTs: accessExpiresTs, refreshTokenKey: refreshKey });
    return { access_token: accessToken, refresh_token: refreshToken, expires_in_ms: accessExpiresTs - now, refreshKey };
  }

  /**
   * An access token without a refresh token (login or registration without `refresh_token:
   * true`): it expires after nonrefreshableAccessTokenLifetimeMs, and never outlives
   * sessionLifetimeMs (as Synapse); with neither set it never expires (no expires_in_ms).
   */
  async issueNonRefreshable(tx: Queryable, userId: string, deviceId: string): Promise<{ access_token: string; expires_in_ms?: number }> {
    const now = Date.now();
    const { nonrefreshableAccessTokenLifetimeMs, sessionLifetimeMs } = this.settings;
    const expiresTs = capped(
      nonrefreshableAccessTokenLifetimeMs !== undefined ? now + nonrefreshableAccessTokenLifetimeMs : null,
      sessionLifetimeMs !== undefined ? now + sessionLifetimeMs : null,
    );
    if (expiresTs === null) return { access_token: await this.tokens.issue(userId, deviceId, tx) };
    const accessToken = await this.tokens.issue(userId, deviceId, tx, { expiresTs });
    return { access_token: accessToken, expires_in_ms: expiresTs - now };
  }

  /** POST /refresh: the refresh token for a new pair. 401 M_UNKNOWN_TOKEN when it is unknown, revoked or already superseded. */
  async refresh(refreshToken: string): Promise<RefreshablePair> {
    const key = sha256Hex(refreshToken);
    return this.db.transaction(async (tx) => {
      // The row lock orders concurrent refreshes of one token (and its retirement).
      const { rows } = await tx.query<{
        user_id: string;
        device_id: string;
        next_token_hash: string | null;
        expires_ts: number | string | null;
        session_expires_ts: number | string | null;
      }>('SELECT user_id, device_id, next_token_hash, expires_ts, session_expires_ts FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE', [key]);
      const row = rows[0];
      if (!row) throw new MatrixError(401, 'M_UNKNOWN_TOKEN', 'Unknown refresh token: it was revoked or already replaced; log in again', { soft_logout: false });
      // Expired (expires_ts is capped by the session's end): nothing changes, the client logs in again to its device.
      if (row.expires_ts !== null && Number(row.expires_ts) <= Date.now()) {
        throw new MatrixError(401, 'M_UNKNOWN_TOKEN', 'The refresh token has expired: log in again to this device', { soft_logout: true });
      }
      // This token is being used: the one it replaced goes.
      await this.tokens.retirePredecessor(tx, key);
      // A successor never used (its answer may have been lost) is replaced by the new one.
      if (row.next_token_hash !== null) await this.tokens.revokeRefreshTokens(tx, [row.next_token_hash]);
      const sessionExpiresTs = row.session_expires_ts === null ? null : Number(row.session_expires_ts);
      const { refreshKey, ...pair } = await this.issuePair(tx, row.user_id, row.device_id, { key, sessionExpiresTs });
      await tx.query('UPDATE refresh_tokens SET next_token_hash = $2 WHERE token_hash = $1', [key, refreshKey]);
      return pair;
    });
  }
}

/** The earlier of a timestamp and a cap, null meaning none. */
function capped(ts: number | null, cap: number | null): number | null {
  if (ts === null) return cap;
  return cap === null ? ts : Math.min(ts, cap);
}
