import { Inject, Injectable } from '@nestjs/common';
import type { Db } from '@tessera/storage';
import { MatrixError } from '../errors.js';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { CLIENT_API_DB } from '../tokens.js';
import { isPlainObject } from '../validation.js';
import { verifyPassword } from './password-hash.js';

/** Finds the account a login or UIA body names and checks its password. */
@Injectable()
export class PasswordCheck {
  constructor(
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
  ) {}

  /**
   * The user id an `identifier` (m.id.user) or the legacy `user` field names, as given
   * (a localpart becomes a full id on this server). Undefined when neither is present.
   */
  userFromIdentifier(body: Record<string, unknown>): string | undefined | MatrixError {
    let user: unknown;
    const identifier = body.identifier;
    if (identifier !== undefined) {
      if (!isPlainObject(identifier)) return new MatrixError(400, 'M_BAD_JSON', '"identifier" must be a JSON object');
      if (identifier.type === 'm.id.thirdparty' || identifier.type === 'm.id.phone') {
        // No third-party identifiers are bound on this server: nothing can match.
        return new MatrixError(403, 'M_FORBIDDEN', 'Invalid username or password');
      }
      if (identifier.type !== 'm.id.user') return new MatrixError(400, 'M_UNKNOWN', `Unknown login identifier type ${JSON.stringify(identifier.type)}`);
      user = identifier.user;
      if (typeof user !== 'string') return new MatrixError(400, 'M_BAD_JSON', '"identifier.user" must be a string');
    } else if (body.user !== undefined) {
      user = body.user;
      if (typeof user !== 'string') return new MatrixError(400, 'M_BAD_JSON', '"user" must be a string');
    } else {
      return undefined;
    }
    const name = user as string;
    return name.startsWith('@') ? name : `@${name}:${this.settings.serverName}`;
  }

  /** The stored id of the account: exact match first, then the lower-cased form (ids are made lower-case). */
  async canonicalUserId(userId: string): Promise<string | undefined> {
    const { rows } = await this.db.query<{ user_id: string }>('SELECT user_id FROM accounts WHERE user_id = $1 OR user_id = lower($1) ORDER BY user_id = $1 DESC LIMIT 1', [userId]);
    return rows[0]?.user_id;
  }

  async check(userId: string, password: string): Promise<boolean> {
    const { rows } = await this.db.query<{ password_hash: string | null }>('SELECT password_hash FROM accounts WHERE user_id = $1', [userId]);
    if (!rows[0]) return false;
    return verifyPassword(password, rows[0].password_hash);
  }
}
