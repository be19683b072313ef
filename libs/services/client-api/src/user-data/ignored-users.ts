import { Inject, Injectable } from '@nestjs/common';
import { isUserId } from '../validation.js';
import { AccountDataService, type AccountDataChanges } from './account-data.service.js';

/**
 * Ignoring users (spec "Ignoring Users"): the users in a user's global m.ignored_user_list
 * account data. Their events other than state events are not sent to that user (state events are,
 * so that the room does not look different), nor their invites; that applies at once, to the
 * next /sync (as Synapse: /sync, /messages and /context).
 */
export const IGNORED_USER_LIST = 'm.ignored_user_list';

/** The ignored user ids of an m.ignored_user_list content (keys of `ignored_users`; anything else is ignored). */
export function ignoredUsersOf(content: unknown): Set<string> {
  const users = (content as { ignored_users?: unknown } | undefined)?.ignored_users;
  if (!users || typeof users !== 'object' || Array.isArray(users)) return new Set();
  return new Set(Object.keys(users).filter(isUserId));
}

/** Whether an event is withheld from a user who ignores its sender: every event but state events. */
export function hiddenByIgnore(ignored: ReadonlySet<string>, event: { sender: string; stateKey: string | null }): boolean {
  return ignored.size > 0 && event.stateKey === null && ignored.has(event.sender);
}

const NONE: ReadonlySet<string> = new Set();
/** Users whose lists are kept in memory; past it the record starts again (each entry is re-read once). */
const MAX_CACHED_USERS = 100_000;

@Injectable()
export class IgnoredUsers {
  /**
   * Per user, the list as of an account data position: /sync reads each user's account data
   * changes since its token anyway, so a list remembered at a position at or after the token is
   * brought up to date from those changes, without a query (a long-polling /sync is computed
   * on every wake-up; a query each time would cost as much as the rest of a quiet wake-up).
   */
  private readonly lists = new Map<string, { ignored: ReadonlySet<string>; asOf: number }>();

  constructor(@Inject(AccountDataService) private readonly accountData: AccountDataService) {}

  /** The users `userId` ignores now. */
  async of(userId: string): Promise<ReadonlySet<string>> {
    return ignoredUsersOf(await this.accountData.get(userId, '', IGNORED_USER_LIST));
  }

  /**
   * For /sync from `since` (an account data position; undefined on an initial sync) up to
   * `upTo`: `changes` are the user's account data changes in (since, upTo] when the sync read
   * them (undefined when the stream had not moved past `since`).
   */
  async forSync(userId: string, since: number | undefined, upTo: number, changes: AccountDataChanges | undefined): Promise<ReadonlySet<string>> {
    const changed = changes?.global.findLast((e) => e.type === IGNORED_USER_LIST);
    const known = this.lists.get(userId);
    let ignored: ReadonlySet<string>;
    if (changed) ignored = ignoredUsersOf(changed.content);
    else if (since === undefined && changes) ignored = NONE; // an initial sync's changes are all of the user's account data
    else if (known && since !== undefined && known.asOf >= since) ignored = known.ignored; // nothing changed in (since, upTo]
    else ignored = await this.of(userId);
    // A record of a later position (a sync from an older token) is kept: it is the newer list.
    if (!known || known.asOf <= upTo) {
      if (this.lists.size >= MAX_CACHED_USERS && !known) this.lists.clear();
      this.lists.set(userId, { ignored, asOf: upTo });
    }
    return ignored;
  }
}
