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
 */
@Injectable()
export class RefreshTokensService {
  constructor(
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
    @Inject(AccessTokensService) private readonly tokens: AccessTokensService,
  ) {}

  /** A new refresh token and its expiring access token for the device (inside the caller's transaction). */
  async issuePair(tx: Queryable, userId: string, deviceId: string, previousKey: string | null = null): Promise<RefreshablePair & { refreshKey: string }> {
    // syr_ as Synapse, so secret scanners recognise a leaked refresh token.
    const refreshToken = `syr_${Buffer.from(userId).toString('base64url')}_${randomToken(24)}`;
    const refreshKey = sha256Hex(refreshToken);
    const now = Date.now();
    await tx.query('INSERT INTO refresh_tokens (token_hash, user_id, device_id, created_ts, prev_token_hash) VALUES ($1, $2, $3, $4, $5)', [
      refreshKey,
      userId,
      deviceId,
      now,
      previousKey,
    ]);
    const lifetime = this.settings.refreshableAccessTokenLifetimeMs;
    const accessToken = await this.tokens.issue(userId, deviceId, tx, { expiresTs: now + lifetime, refreshTokenKey: refreshKey });
    return { access_token: accessToken, refresh_token: refreshToken, expires_in_ms: lifetime, refreshKey };
  }

  /** POST /refresh: the refresh token for a new pair. 401 M_UNKNOWN_TOKEN when it is unknown, revoked or already superseded. */
  async refresh(refreshToken: string): Promise<RefreshablePair> {
    const key = sha256Hex(refreshToken);
    return this.db.transaction(async (tx) => {
      // The row lock orders concurrent refreshes of one token (and its retirement).
      const { rows } = await tx.query<{ user_id: string; device_id: string; next_token_hash: string | null }>(
        'SELECT user_id, device_id, next_token_hash FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE',
        [key],
      );
      const row = rows[0];
      if (!row) throw new MatrixError(401, 'M_UNKNOWN_TOKEN', 'Unknown refresh token: it was revoked or already replaced; log in again', { soft_logout: false });
      // This token is being used: the one it replaced goes.
      await this.tokens.retirePredecessor(tx, key);
      // A successor never used (its answer may have been lost) is replaced by the new one.
      if (row.next_token_hash !== null) await this.tokens.revokeRefreshTokens(tx, [row.next_token_hash]);
      const { refreshKey, ...pair } = await this.issuePair(tx, row.user_id, row.device_id, key);
      await tx.query('UPDATE refresh_tokens SET next_token_hash = $2 WHERE token_hash = $1', [key, refreshKey]);
      return pair;
    });
  }
}
