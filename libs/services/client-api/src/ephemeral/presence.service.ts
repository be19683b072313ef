import { Inject, Injectable } from '@nestjs/common';
import type { Db } from '@tessera/storage';
import { badJson, forbidden, invalidParam, missingParam, notFound } from '../errors.js';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { accountsStore } from '../storage/accounts-store.js';
import { StreamChanges } from '../stream-changes.js';
import { CLIENT_API_DB } from '../tokens.js';
import { serverNameOf, type JsonBody } from '../validation.js';
import { EPHEMERAL_STORE, type EphemeralStore, type PresenceRecord, type PresenceValue } from './ephemeral-store.js';

/** A user counts as currently active when seen within this window (as Synapse: 5 minutes). */
const ACTIVE_WINDOW_MS = 5 * 60 * 1000;
const PRESENCE_VALUES: PresenceValue[] = ['online', 'offline', 'unavailable'];

export interface PresenceEvent {
  type: 'm.presence';
  sender: string;
  content: { presence: PresenceValue; last_active_ago?: number; status_msg?: string; currently_active?: boolean };
}

/** Basic presence (spec "Presence"): set by the user, kept in the ephemeral store. */
@Injectable()
export class PresenceService {
  constructor(
    @Inject(EPHEMERAL_STORE) private readonly store: EphemeralStore,
    @Inject(StreamChanges) private readonly changes: StreamChanges,
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
  ) {}

  async setStatus(requesterId: string, userId: string, body: JsonBody): Promise<void> {
    if (requesterId !== userId) throw forbidden("You cannot set another user's presence");
    if (body.presence === undefined) throw missingParam('missing "presence"');
    if (typeof body.presence !== 'string') throw badJson('"presence" must be a string');
    if (!PRESENCE_VALUES.includes(body.presence as PresenceValue)) throw invalidParam(`"presence" must be one of ${PRESENCE_VALUES.join(', ')}`);
    const statusMsg = body.status_msg;
    if (statusMsg !== undefined && statusMsg !== null && typeof statusMsg !== 'string') throw badJson('"status_msg" must be a string');
    await this.record(userId, body.presence as PresenceValue, statusMsg ?? undefined, Date.now());
    await this.outbound?.(userId);
  }

  /** Sends a local user's presence to the servers sharing a room with them (m.presence EDUs); set by the EDU bridge. */
  outbound?: (userId: string) => Promise<void>;

  /** Records presence (local, or from an m.presence EDU) and wakes /sync. */
  async record(userId: string, presence: PresenceValue, statusMsg: string | undefined, lastActiveTs: number): Promise<void> {
    const position = await this.store.setPresence(userId, presence, statusMsg, lastActiveTs);
    this.changes.emit({ stream: 'presence', position, userId });
  }

  /** The m.presence content of a user as it stands (offline when never set). */
  async current(userId: string): Promise<PresenceEvent['content']> {
    const record = await this.store.getPresence(userId);
    return record ? content(record) : { presence: 'offline' };
  }

  async getStatus(userId: string): Promise<PresenceEvent['content']> {
    if (serverNameOf(userId) === this.settings.serverName && !(await accountsStore.get(this.db, userId))) throw notFound(`No user ${userId}`);
    // Remote users' presence arrives as m.presence EDUs (EduBridge); unknown means offline.
    return this.current(userId);
  }

  async currentPosition(): Promise<number> {
    return this.store.currentPresencePosition();
  }

  /** For /sync: the presence of these users as it stands, for those who have one (never set: none). */
  async presenceOf(userIds: string[]): Promise<PresenceEvent[]> {
    if (userIds.length === 0) return [];
    const records = await this.store.getPresences(userIds);
    return userIds.flatMap((userId) => {
      const record = records.get(userId);
      return record ? [{ type: 'm.presence' as const, sender: userId, content: content(record) }] : [];
    });
  }

  /** For /sync: presence of the given users changed after `since`. */
  async getPresenceSince(userIds: string[], since: number): Promise<{ position: number; events: PresenceEvent[] }> {
    const position = await this.store.currentPresencePosition();
    // Only the users whose presence changed since, read together: a /sync in a room of N members
    // must not cost N reads each time anyone's presence moves.
    const wanted = new Set(userIds);
    const changed = (await this.store.presenceChangedSince(since)).filter((id) => wanted.has(id));
    const records = await this.store.getPresences(changed);
    const events: PresenceEvent[] = [];
    for (const userId of changed) {
      const record = records.get(userId);
      if (record && record.position > since) events.push({ type: 'm.presence', sender: userId, content: content(record) });
    }
    return { position, events };
  }
}

function content(record: PresenceRecord): PresenceEvent['content'] {
  const ago = Math.max(0, Date.now() - record.lastActiveTs);
  const result: PresenceEvent['content'] = {
    presence: record.presence,
    last_active_ago: ago,
    currently_active: record.presence === 'online' && ago < ACTIVE_WINDOW_MS,
  };
  if (record.statusMsg !== undefined) result.status_msg = record.statusMsg;
  return result;
}
