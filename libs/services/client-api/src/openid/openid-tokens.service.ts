import { Inject, Injectable } from '@nestjs/common';
import type { Db } from '@tessera/storage';
import { randomToken, sha256Hex } from '../auth/token-hash.js';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { CLIENT_API_DB } from '../tokens.js';

/** Lifetime of an OpenID token, as Synapse's (one hour). */
export const OPENID_TOKEN_LIFETIME_MS = 3_600_000;

export interface OpenIdCredentials {
  access_token: string;
  token_type: 'Bearer';
  matrix_server_name: string;
  expires_in: number;
}

/**
 * OpenID tokens: proof of a user's identity for a third party (an integration manager, a
 * widget), which exchanges the token at GET /_matrix/federation/v1/openid/userinfo
 * (federation-ingress reads the openid_tokens table) for the user id. Only the token's
 * SHA-256 is stored; it grants nothing else.
 */
@Injectable()
export class OpenIdTokensService {
  constructor(
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
  ) {}

  async issue(userId: string, now = Date.now()): Promise<OpenIdCredentials> {
    const token = randomToken(24);
    await this.db.transaction(async (tx) => {
      // Expired tokens are useless; dropping them here keeps the table small without a timer.
      await tx.query('DELETE FROM openid_tokens WHERE expires_ts <= $1', [now]);
      await tx.query('INSERT INTO openid_tokens (token_hash, user_id, expires_ts) VALUES ($1, $2, $3)', [sha256Hex(token), userId, now + OPENID_TOKEN_LIFETIME_MS]);
    });
    return { access_token: token, token_type: 'Bearer', matrix_server_name: this.settings.serverName, expires_in: OPENID_TOKEN_LIFETIME_MS / 1000 };
  }
}
