import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { LOGGER } from '@tessera/http';
import type { Db } from '@tessera/storage';
import type { Logger } from 'pino';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { CLIENT_API_DB } from '../tokens.js';
import { AccessTokensService } from './access-tokens.service.js';

/** Rows deleted per statement, and statements per run: a run is a few short transactions, never one long one. */
const BATCH = 500;
const MAX_BATCHES_PER_RUN = 20;

/**
 * Removes access and refresh tokens whose expiry passed more than expiredTokenRetentionMs ago,
 * every tokenCleanupIntervalMs, in small batches over the partial expiry indexes (migration
 * client_api_refresh_0002_token_lifetimes), so it is cheap on PGlite too.
 *
 * Why a periodic sweep and not deletion on the lookup path: Synapse deletes neither (only its
 * login tokens, periodically), and a token found expired at lookup must stay on record so that
 * it keeps being answered as a soft logout (soft_logout: true: the client keeps its keys and logs
 * in again to the same device) rather than as an unknown token (soft_logout: false: "the
 * session is destroyed"), which the spec tells clients to treat as a full logout. Most expired
 * tokens are never presented again, so the lookup path would not clean them anyway. The
 * retention is the trade: during it an expired token still gets its soft logout answer; after
 * it, it is unknown. Access tokens of a refresh chain are harmless to drop (the client holds the
 * refresh token, which carries the session); an expired refresh token goes with its access
 * tokens. Refresh tokens already used are deleted at once by the rotation
 * (AccessTokensService.retirePredecessor), so they need nothing here; a refresh token whose
 * successor was never used is still valid (spec: until the new pair is used) and is only
 * removed if it expires.
 *
 * Several replicas may sweep at the same time: the deletes are idempotent.
 */
@Injectable()
export class TokenCleanupService implements OnModuleInit, OnModuleDestroy {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
    @Inject(AccessTokensService) private readonly tokens: AccessTokensService,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onModuleInit(): void {
    const interval = this.settings.tokenCleanupIntervalMs;
    if (interval <= 0) return;
    this.timer = setInterval(() => {
      // One sweep at a time: a slow one is not overlapped by the next tick.
      if (this.running) return;
      this.running = this.sweep()
        .then(() => undefined)
        .catch((error: unknown) => this.logger.warn({ err: error }, 'cleanup of expired tokens failed; retrying at the next interval'))
        .finally(() => (this.running = undefined));
    }, interval);
    this.timer.unref();
  }

  async onModuleDestroy(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    // The database closes after the modules: let a sweep under way finish first.
    await this.running;
  }

  /** One bounded sweep. Returns how many refresh and access tokens it removed. */
  async sweep(now = Date.now()): Promise<{ refreshTokens: number; accessTokens: number }> {
    const before = now - this.settings.expiredTokenRetentionMs;
    let refreshTokens = 0;
    let accessTokens = 0;
    let batches = 0;
    // Refresh tokens first: their access tokens go with them (revoked everywhere, as at logout,
    // since a refresh token may expire before an access token of its pair).
    while (batches++ < MAX_BATCHES_PER_RUN) {
      const removed = await this.db.transaction(async (tx) => {
        const { rows } = await tx.query<{ token_hash: string }>('SELECT token_hash FROM refresh_tokens WHERE expires_ts <= $1 LIMIT $2', [before, BATCH]);
        await this.tokens.revokeRefreshTokens(tx, rows.map((r) => r.token_hash));
        return rows.length;
      });
      refreshTokens += removed;
      if (removed < BATCH) break;
    }
    // Access tokens past their expiry: no cache holds them (an entry never outlives its token's
    // expiry), and an expired JWT fails its own `exp` check, so deleting the row is enough.
    while (batches++ < MAX_BATCHES_PER_RUN) {
      const { rows } = await this.db.query<{ token_hash: string }>(
        'DELETE FROM access_tokens WHERE token_hash IN (SELECT token_hash FROM access_tokens WHERE expires_ts <= $1 LIMIT $2) RETURNING token_hash',
        [before, BATCH],
      );
      accessTokens += rows.length;
      if (rows.length < BATCH) break;
    }
    if (refreshTokens + accessTokens > 0) this.logger.debug({ refreshTokens, accessTokens }, 'removed expired tokens');
    return { refreshTokens, accessTokens };
  }
}
