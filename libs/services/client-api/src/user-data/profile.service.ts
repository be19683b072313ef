import { EventEmitter } from 'node:events';
import { Inject, Injectable } from '@nestjs/common';
import type { Db } from '@tessera/storage';
import { badJson, forbidden, MatrixError, notFound } from '../errors.js';
import { RemoteQueries } from '../federation/remote-queries.js';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { accountsStore } from '../storage/accounts-store.js';
import { CLIENT_API_DB } from '../tokens.js';
import { serverNameOf, type JsonBody } from '../validation.js';

/** Spec v1.16: a profile (all fields, as JSON) may be at most 64 KiB. */
const MAX_PROFILE_BYTES = 64 * 1024;

export interface ProfileChange {
  userId: string;
  profile: Record<string, unknown>;
}

/** Profiles of local users: displayname, avatar_url and custom fields (spec v1.16 "profile fields"). */
@Injectable()
export class ProfileService {
  private readonly emitter = new EventEmitter();
  private readonly propagations: Array<(change: ProfileChange) => Promise<void>> = [];

  constructor(
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
    @Inject(RemoteQueries) private readonly remote: RemoteQueries,
  ) {}

  /** A user's profile; a user of another server is asked of it (query/profile). 404 for an unknown user. */
  async getProfile(userId: string): Promise<Record<string, unknown>> {
    const server = serverNameOf(userId);
    if (server !== this.settings.serverName) return withoutNulls(await this.remote.profile(userId, server));
    return this.localProfile(userId);
  }

  async getField(userId: string, key: string): Promise<Record<string, unknown>> {
    const server = serverNameOf(userId);
    // Only the field is asked of another server (the query's `field` parameter).
    const profile = server === this.settings.serverName ? await this.localProfile(userId) : withoutNulls(await this.remote.profile(userId, server, key));
    if (!(key in profile)) throw notFound(`The profile has no ${key}`);
    return { [key]: profile[key] };
  }

  private async localProfile(userId: string): Promise<Record<string, unknown>> {
    const account = await accountsStore.get(this.db, userId);
    if (!account || account.deactivated) throw notFound('Profile not found');
    return withoutNulls(account.profile);
  }

  async setField(requesterId: string, userId: string, key: string, body: JsonBody): Promise<void> {
    if (requesterId !== userId) throw forbidden("You cannot change another user's profile");
    checkKeyName(key);
    if (!(key in body)) throw new MatrixError(400, 'M_MISSING_PARAM', `The body must contain "${key}"`);
    const value = body[key];
    if ((key === 'displayname' || key === 'avatar_url') && typeof value !== 'string' && value !== null) throw badJson(`"${key}" must be a string`);
    if (key === 'displayname' && typeof value === 'string' && value.length > 256) throw badJson('"displayname" is longer than 256 characters');
    const profile = await this.localProfile(userId);
    const next = { ...profile, [key]: value };
    if (Buffer.byteLength(JSON.stringify(next)) > MAX_PROFILE_BYTES) throw new MatrixError(400, 'M_PROFILE_TOO_LARGE', 'The profile would exceed 64 KiB');
    await accountsStore.setProfileField(this.db, userId, key, value);
    await this.changed({ userId, profile: next }, key);
  }

  async deleteField(requesterId: string, userId: string, key: string): Promise<void> {
    if (requesterId !== userId) throw forbidden("You cannot change another user's profile");
    checkKeyName(key);
    const profile = await this.localProfile(userId);
    await accountsStore.deleteProfileField(this.db, userId, key);
    delete profile[key];
    await this.changed({ userId, profile }, key);
  }

  private async changed(change: ProfileChange, key: string): Promise<void> {
    this.emitter.emit('change', change);
    // Rooms show displayname and avatar_url in m.room.member events: answered once they are updated (as Synapse).
    if (key === 'displayname' || key === 'avatar_url') for (const propagate of this.propagations) await propagate(change);
  }

  /** Runs on every change of displayname or avatar_url, before the request is answered (the rooms side updates member events). */
  propagateWith(propagate: (change: ProfileChange) => Promise<void>): void {
    this.propagations.push(propagate);
  }

  /**
   * Profile changes, for whoever must propagate them (the rooms side updates the user's
   * m.room.member events, as Synapse does). Returns the unsubscribe function.
   */
  onChange(listener: (change: ProfileChange) => void): () => void {
    this.emitter.on('change', listener);
    return () => this.emitter.off('change', listener);
  }
}

function withoutNulls(profile: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(profile).filter(([, v]) => v !== null && v !== undefined));
}

function checkKeyName(key: string): void {
  if (Buffer.byteLength(key) > 255) throw new MatrixError(400, 'M_KEY_TOO_LARGE', 'Profile field names are at most 255 bytes');
}
