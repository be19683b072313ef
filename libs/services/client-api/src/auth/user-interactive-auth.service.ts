import { Inject, Injectable } from '@nestjs/common';
import type { Db } from '@tessera/storage';
import { MatrixError } from '../errors.js';
import { CLIENT_API_DB } from '../tokens.js';
import { isPlainObject } from '../validation.js';
import { randomToken } from './token-hash.js';
import { PasswordCheck } from './password-check.js';

export type UiaPurpose = 'register' | 'password' | 'delete_devices' | 'delete_device' | 'get_login_token' | 'device_signing' | 'deactivate';

/** Stages of the flows this server offers. */
type Stage = 'm.login.dummy' | 'm.login.password';

const SESSION_LIFETIME_MS = 60 * 60 * 1000;

/**
 * User-interactive authentication (spec: Client-Server API, "User-Interactive Authentication
 * API"). A request without `auth` (or with stages still to do) is answered 401 with the flows,
 * params and a session id; the client completes stages by repeating the request with
 * `auth: { type, session, ... }`. Sessions live in PostgreSQL so any replica can continue them.
 */
@Injectable()
export class UserInteractiveAuthService {
  constructor(
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(PasswordCheck) private readonly passwords: PasswordCheck,
  ) {}

  /** Registration offers m.login.dummy; acting on an existing account asks for its password. */
  private flowsFor(purpose: UiaPurpose): Stage[][] {
    return purpose === 'register' ? [['m.login.dummy']] : [['m.login.password']];
  }

  /**
   * Resolves when the request's `auth` completes a flow; otherwise throws the 401 that tells the
   * client what to do next. `userId` is the account being acted on (absent for registration).
   */
  async require(body: Record<string, unknown>, purpose: UiaPurpose, userId?: string): Promise<void> {
    const flows = this.flowsFor(purpose);
    const auth = body.auth;
    if (auth === undefined || auth === null) {
      const session = await this.createSession(purpose, userId);
      throw this.challenge(flows, session, []);
    }
    if (!isPlainObject(auth)) throw new MatrixError(400, 'M_BAD_JSON', '"auth" must be a JSON object');
    if (auth.session !== undefined && typeof auth.session !== 'string') throw new MatrixError(400, 'M_BAD_JSON', '"auth.session" must be a string');

    let session = typeof auth.session === 'string' ? auth.session : undefined;
    let completed: string[] = [];
    if (session !== undefined) {
      const stored = await this.loadSession(session);
      if (!stored) throw new MatrixError(400, 'M_UNKNOWN', `Unknown user-interactive auth session "${session}": start again without a session`);
      if (stored.purpose !== purpose || (stored.user_id ?? undefined) !== userId) {
        throw new MatrixError(403, 'M_FORBIDDEN', 'This auth session was started for another operation');
      }
      completed = stored.completed;
    } else {
      session = await this.createSession(purpose, userId);
    }

    const type = auth.type;
    if (type !== undefined) {
      if (typeof type !== 'string') throw new MatrixError(400, 'M_BAD_JSON', '"auth.type" must be a string');
      if (!flows.some((flow) => flow.includes(type as Stage))) {
        throw this.challenge(flows, session, completed, 'M_UNRECOGNIZED', `Auth type ${type} is not offered here`, 400);
      }
      const error = await this.attemptStage(type as Stage, auth, userId);
      if (error) throw this.challenge(flows, session, completed, 'M_FORBIDDEN', error);
      if (!completed.includes(type)) completed = [...completed, type];
    }

    if (flows.some((flow) => flow.every((stage) => completed.includes(stage)))) {
      await this.db.query('DELETE FROM uia_sessions WHERE session_id = $1', [session]);
      return;
    }
    await this.db.query('UPDATE uia_sessions SET completed = $2 WHERE session_id = $1', [session, JSON.stringify(completed)]);
    throw this.challenge(flows, session, completed);
  }

  /** Undefined on success, else the reason the stage failed. */
  private async attemptStage(stage: Stage, auth: Record<string, unknown>, userId: string | undefined): Promise<string | undefined> {
    if (stage === 'm.login.dummy') return undefined;
    const password = auth.password;
    if (typeof password !== 'string') return 'm.login.password needs "password"';
    const claimed = this.passwords.userFromIdentifier(auth);
    if (claimed instanceof MatrixError) return claimed.message;
    if (claimed !== undefined && claimed !== userId) return 'The identifier does not match the logged-in user';
    if (!userId || !(await this.passwords.check(userId, password))) return 'Invalid password';
    return undefined;
  }

  private challenge(flows: Stage[][], session: string, completed: string[], errcode?: string, error?: string, status = 401): MatrixError {
    const extra: Record<string, unknown> = {
      flows: flows.map((stages) => ({ stages })),
      params: {},
      session,
    };
    if (completed.length > 0) extra.completed = completed;
    if (errcode === undefined) {
      // A plain challenge: the body is the UIA response itself (errcode is optional there).
      return new MatrixError(status, 'M_FORBIDDEN', 'User-interactive authentication is required', extra, true);
    }
    return new MatrixError(status, errcode, error ?? '', extra);
  }

  private async createSession(purpose: UiaPurpose, userId: string | undefined): Promise<string> {
    const session = randomToken(18);
    const now = Date.now();
    await this.db.query('DELETE FROM uia_sessions WHERE created_ts < $1', [now - SESSION_LIFETIME_MS]);
    await this.db.query('INSERT INTO uia_sessions (session_id, purpose, user_id, created_ts) VALUES ($1, $2, $3, $4)', [session, purpose, userId ?? null, now]);
    return session;
  }

  private async loadSession(session: string) {
    const { rows } = await this.db.query<{ purpose: string; user_id: string | null; completed: string[]; created_ts: number }>(
      'SELECT purpose, user_id, completed, created_ts FROM uia_sessions WHERE session_id = $1',
      [session],
    );
    const row = rows[0];
    if (!row || row.created_ts < Date.now() - SESSION_LIFETIME_MS) return undefined;
    return row;
  }
}
