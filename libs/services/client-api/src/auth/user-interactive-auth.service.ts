import { Inject, Injectable } from '@nestjs/common';
import type { Db } from '@tessera/storage';
import { RegistrationTokensService } from '../accounts/registration-tokens.service.js';
import { MatrixError } from '../errors.js';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { CLIENT_API_DB } from '../tokens.js';
import { isPlainObject } from '../validation.js';
import { randomToken } from './token-hash.js';
import { PasswordCheck } from './password-check.js';

export type UiaPurpose = 'register' | 'password' | 'delete_devices' | 'delete_device' | 'get_login_token' | 'device_signing' | 'deactivate';

/** Stages of the flows this server offers. */
type Stage = 'm.login.dummy' | 'm.login.password' | 'm.login.registration_token';

/** What a completed UIA leaves for the operation: the registration token whose use it reserved. */
export interface UiaOutcome {
  registrationToken?: string;
}

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
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
    @Inject(RegistrationTokensService) private readonly registrationTokens: RegistrationTokensService,
  ) {}

  /**
   * Registration offers m.login.dummy (after m.login.registration_token when a token is
   * required, as Synapse); acting on an existing account asks for its password.
   */
  private flowsFor(purpose: UiaPurpose): Stage[][] {
    if (purpose !== 'register') return [['m.login.password']];
    return this.settings.registrationRequiresToken ? [['m.login.registration_token', 'm.login.dummy']] : [['m.login.dummy']];
  }

  /**
   * Resolves when the request's `auth` completes a flow; otherwise throws the 401 that tells the
   * client what to do next. `userId` is the account being acted on (absent for registration).
   */
  async require(body: Record<string, unknown>, purpose: UiaPurpose, userId?: string): Promise<UiaOutcome> {
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
    let registrationToken: string | undefined;
    if (session !== undefined) {
      const stored = await this.loadSession(session);
      if (!stored) throw new MatrixError(400, 'M_UNKNOWN', `Unknown user-interactive auth session "${session}": start again without a session`);
      if (stored.purpose !== purpose || (stored.user_id ?? undefined) !== userId) {
        throw new MatrixError(403, 'M_FORBIDDEN', 'This auth session was started for another operation');
      }
      completed = stored.completed;
      registrationToken = stored.registration_token ?? undefined;
    } else {
      session = await this.createSession(purpose, userId);
    }

    const type = auth.type;
    if (type !== undefined) {
      if (typeof type !== 'string') throw new MatrixError(400, 'M_BAD_JSON', '"auth.type" must be a string');
      if (!flows.some((flow) => flow.includes(type as Stage))) {
        throw this.challenge(flows, session, completed, 'M_UNRECOGNIZED', `Auth type ${type} is not offered here`, 400);
      }
      if (type === 'm.login.registration_token') {
        const token = auth.token;
        if (typeof token !== 'string' || token === '') throw this.challenge(flows, session, completed, 'M_MISSING_PARAM', 'm.login.registration_token needs "token"', 400);
        // The session's token already holds a pending use; another token would take a second one.
        if (registrationToken !== undefined && registrationToken !== token) {
          throw this.challenge(flows, session, completed, 'M_FORBIDDEN', 'This session was already given another registration token');
        }
        if (registrationToken === undefined) {
          // One transaction: a crash between marking the session and reserving the use would leave
          // a pending use that no session gives back.
          const reserved = await this.db.transaction(async (tx) => {
            const { rowCount } = await tx.query('UPDATE uia_sessions SET registration_token = $2 WHERE session_id = $1 AND registration_token IS NULL', [session, token]);
            if (rowCount !== 1) return false;
            if (await this.registrationTokens.reserve(tx, token)) return true;
            await tx.query('UPDATE uia_sessions SET registration_token = NULL WHERE session_id = $1', [session]);
            return false;
          });
          if (!reserved) throw this.challenge(flows, session, completed, 'M_UNAUTHORIZED', 'Invalid registration token');
          registrationToken = token;
        }
      } else {
        const error = await this.attemptStage(type as Stage, auth, userId);
        if (error) throw this.challenge(flows, session, completed, 'M_FORBIDDEN', error);
      }
      if (!completed.includes(type)) completed = [...completed, type];
    }

    if (flows.some((flow) => flow.every((stage) => completed.includes(stage)))) {
      await this.db.query('DELETE FROM uia_sessions WHERE session_id = $1', [session]);
      return { registrationToken };
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
    if (claimed !== undefined && claimed !== userId && (await this.passwords.canonicalUserId(claimed)) !== userId) {
      // Another user's credentials: refused outright, not a stage to retry (403, as Synapse;
      // Complement's "DELETE /device/{deviceId} requires UI auth user to match device owner").
      throw new MatrixError(403, 'M_FORBIDDEN', 'The identifier does not match the logged-in user');
    }
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
    // An abandoned registration gives its token's pending use back (as Synapse), in the same transaction.
    await this.db.transaction(async (tx) => {
      const { rows: abandoned } = await tx.query<{ registration_token: string | null }>('DELETE FROM uia_sessions WHERE created_ts < $1 RETURNING registration_token', [
        now - SESSION_LIFETIME_MS,
      ]);
      for (const { registration_token: token } of abandoned) if (token !== null) await this.registrationTokens.release(tx, token);
    });
    await this.db.query('INSERT INTO uia_sessions (session_id, purpose, user_id, created_ts) VALUES ($1, $2, $3, $4)', [session, purpose, userId ?? null, now]);
    return session;
  }

  private async loadSession(session: string) {
    const { rows } = await this.db.query<{ purpose: string; user_id: string | null; completed: string[]; created_ts: number; registration_token: string | null }>(
      'SELECT purpose, user_id, completed, created_ts, registration_token FROM uia_sessions WHERE session_id = $1',
      [session],
    );
    const row = rows[0];
    if (!row || row.created_ts < Date.now() - SESSION_LIFETIME_MS) return undefined;
    return row;
  }
}
