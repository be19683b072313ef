import { randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { Db, Queryable } from '@tessera/storage';
import { badJson, forbidden, invalidParam, notFound } from '../errors.js';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { accountsStore } from '../storage/accounts-store.js';
import { CLIENT_API_DB } from '../tokens.js';
import type { JsonBody } from '../validation.js';

/** A registration token as Synapse's admin API shows it. */
export interface RegistrationToken {
  token: string;
  uses_allowed: number | null;
  pending: number;
  completed: number;
  expiry_time: number | null;
}

interface TokenRow {
  token: string;
  uses_allowed: number | string | null;
  pending: number | string;
  completed: number | string;
  expiry_time: number | string | null;
}

const TOKEN_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-';
const TOKEN_PATTERN = /^[A-Za-z0-9._~-]{1,64}$/;

function toToken(row: TokenRow): RegistrationToken {
  return {
    token: row.token,
    uses_allowed: row.uses_allowed === null ? null : Number(row.uses_allowed),
    pending: Number(row.pending),
    completed: Number(row.completed),
    expiry_time: row.expiry_time === null ? null : Number(row.expiry_time),
  };
}

/**
 * Registration tokens (spec: the m.login.registration_token stage, and
 * GET /v1/register/m.login.registration_token/validity; Synapse's registration_requires_token).
 * A token allows `uses_allowed` registrations (null: any number) until `expiry_time` (ms since
 * the epoch; null: never). A use is `pending` from the moment the UIA stage accepts the token
 * until the account is created (then `completed`) or the UIA session is abandoned (then given
 * back), so a token with one use left cannot admit two registrations at once.
 *
 * Admins manage them through Synapse's admin API (/_synapse/admin/v1/registration_tokens),
 * which `npm run admin -- create-registration-token` calls.
 */
@Injectable()
export class RegistrationTokensService {
  constructor(
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
  ) {}

  /** GET /v1/register/m.login.registration_token/validity. */
  async validity(token: string): Promise<{ valid: boolean }> {
    if (!this.settings.enableRegistration) throw forbidden('Registration is not enabled on this homeserver');
    const { rows } = await this.db.query(
      'SELECT 1 FROM registration_tokens WHERE token = $1 AND (uses_allowed IS NULL OR pending + completed < uses_allowed) AND (expiry_time IS NULL OR expiry_time > $2)',
      [token, Date.now()],
    );
    return { valid: rows.length > 0 };
  }

  /** Takes a pending use of the token; false when it is unknown, used up or expired. */
  async reserve(db: Queryable, token: string): Promise<boolean> {
    const { rowCount } = await db.query(
      `UPDATE registration_tokens SET pending = pending + 1
       WHERE token = $1 AND (uses_allowed IS NULL OR pending + completed < uses_allowed) AND (expiry_time IS NULL OR expiry_time > $2)`,
      [token, Date.now()],
    );
    return rowCount === 1;
  }

  /** The account was created: the pending use is completed. */
  async complete(db: Queryable, token: string): Promise<void> {
    await db.query('UPDATE registration_tokens SET pending = GREATEST(pending - 1, 0), completed = completed + 1 WHERE token = $1', [token]);
  }

  /** The pending use ends without an account (registration failed, UIA session abandoned). */
  async release(db: Queryable, token: string): Promise<void> {
    await db.query('UPDATE registration_tokens SET pending = GREATEST(pending - 1, 0) WHERE token = $1', [token]);
  }

  // ---- Synapse's admin API ----

  async requireAdmin(userId: string): Promise<void> {
    if (!(await accountsStore.get(this.db, userId))?.is_admin) throw forbidden('You are not a server admin');
  }

  /** POST /_synapse/admin/v1/registration_tokens/new: {token?, length?, uses_allowed?, expiry_time?}. */
  async create(body: JsonBody): Promise<RegistrationToken> {
    const usesAllowed = this.usesAllowed(body);
    const expiryTime = this.expiryTime(body);
    let token: string;
    if (body.token !== undefined && body.token !== null) {
      if (typeof body.token !== 'string' || !TOKEN_PATTERN.test(body.token)) {
        throw invalidParam('"token" must be 1 to 64 characters of A-Z, a-z, 0-9, ".", "_", "~" and "-"');
      }
      if (body.length !== undefined) throw invalidParam('give "token" or "length", not both');
      token = body.token;
    } else {
      const length = body.length ?? 16;
      if (typeof length !== 'number' || !Number.isInteger(length) || length < 1 || length > 64) throw invalidParam('"length" must be a whole number from 1 to 64');
      token = [...randomBytes(length)].map((b) => TOKEN_CHARS[b % TOKEN_CHARS.length]).join('');
    }
    const { rowCount } = await this.db.query(
      'INSERT INTO registration_tokens (token, uses_allowed, expiry_time, created_ts) VALUES ($1, $2, $3, $4) ON CONFLICT (token) DO NOTHING',
      [token, usesAllowed ?? null, expiryTime ?? null, Date.now()],
    );
    if (rowCount !== 1) throw invalidParam(`Token ${token} already exists`);
    return { token, uses_allowed: usesAllowed ?? null, pending: 0, completed: 0, expiry_time: expiryTime ?? null };
  }

  /** GET /_synapse/admin/v1/registration_tokens[?valid=true|false]. */
  async list(valid: unknown): Promise<{ registration_tokens: RegistrationToken[] }> {
    if (valid !== undefined && valid !== 'true' && valid !== 'false') throw invalidParam('"valid" must be true or false');
    const { rows } = await this.db.query<TokenRow>('SELECT token, uses_allowed, pending, completed, expiry_time FROM registration_tokens ORDER BY created_ts, token');
    const now = Date.now();
    const tokens = rows.map(toToken).filter((t) => {
      if (valid === undefined) return true;
      const isValid = (t.uses_allowed === null || t.pending + t.completed < t.uses_allowed) && (t.expiry_time === null || t.expiry_time > now);
      return isValid === (valid === 'true');
    });
    return { registration_tokens: tokens };
  }

  async get(token: string): Promise<RegistrationToken> {
    const { rows } = await this.db.query<TokenRow>('SELECT token, uses_allowed, pending, completed, expiry_time FROM registration_tokens WHERE token = $1', [token]);
    if (!rows[0]) throw notFound(`No such registration token: ${token}`);
    return toToken(rows[0]);
  }

  /** PUT /_synapse/admin/v1/registration_tokens/{token}: uses_allowed and/or expiry_time (null: unlimited). */
  async update(token: string, body: JsonBody): Promise<RegistrationToken> {
    const sets: string[] = [];
    const params: unknown[] = [token];
    if ('uses_allowed' in body) {
      params.push(this.usesAllowed(body) ?? null);
      sets.push(`uses_allowed = $${params.length}`);
    }
    if ('expiry_time' in body) {
      params.push(this.expiryTime(body) ?? null);
      sets.push(`expiry_time = $${params.length}`);
    }
    if (sets.length > 0) {
      const { rowCount } = await this.db.query(`UPDATE registration_tokens SET ${sets.join(', ')} WHERE token = $1`, params);
      if (rowCount !== 1) throw notFound(`No such registration token: ${token}`);
    }
    return this.get(token);
  }

  async delete(token: string): Promise<void> {
    const { rowCount } = await this.db.query('DELETE FROM registration_tokens WHERE token = $1', [token]);
    if (rowCount !== 1) throw notFound(`No such registration token: ${token}`);
  }

  private usesAllowed(body: JsonBody): number | undefined {
    const v = body.uses_allowed;
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw invalidParam('"uses_allowed" must be a whole number of at least 0, or null');
    return v;
  }

  private expiryTime(body: JsonBody): number | undefined {
    const v = body.expiry_time;
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw badJson('"expiry_time" must be a timestamp in milliseconds, or null');
    if (v < Date.now()) throw invalidParam('"expiry_time" is in the past');
    return v;
  }
}
