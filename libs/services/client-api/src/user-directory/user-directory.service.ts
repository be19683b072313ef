import { Inject, Injectable } from '@nestjs/common';
import { DB } from '@tessera/http';
import type { Db } from '@tessera/storage';

/** Synapse's cap on a search's limit: a directory search is a type-ahead, not a listing. */
export const MAX_DIRECTORY_LIMIT = 50;

export interface DirectoryUser {
  user_id: string;
  display_name?: string;
  avatar_url?: string;
}

interface CandidateRow {
  user_id: string;
  profile: Record<string, unknown> | string | null;
  shares_room: boolean;
}

/** The words of a text for matching: runs of letters and digits, lower-cased (Synapse's `\w+`). */
export function wordsOf(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}_]+/gu) ?? [];
}

/**
 * How well one user matches every term (0: not at all). As Synapse's full-text ranking on
 * PostgreSQL, a term matches a word it is a prefix of; the localpart counts most, then the
 * display name, then the server name; an exact word counts more than a prefix. Users who
 * share a room with the searcher, and those with a display name or an avatar, rank higher.
 */
export function matchScore(terms: readonly string[], userId: string, displayName: string | undefined, avatarUrl: string | undefined, sharesRoom: boolean): number {
  const colon = userId.indexOf(':');
  const fields: Array<{ words: string[]; weight: number }> = [
    { words: wordsOf(userId.slice(1, colon)), weight: 1 },
    { words: wordsOf(displayName ?? ''), weight: 0.4 },
    { words: wordsOf(userId.slice(colon + 1)), weight: 0.1 },
  ];
  let score = 0;
  for (const term of terms) {
    let best = 0;
    for (const { words, weight } of fields) {
      for (const word of words) {
        if (word === term) best = Math.max(best, weight * 2);
        else if (word.startsWith(term)) best = Math.max(best, weight);
      }
    }
    if (best === 0) return 0;
    score += best;
  }
  return score * (sharesRoom ? 4 : 1) * (displayName ? 1.2 : 1) * (avatarUrl ? 1.2 : 1);
}

/**
 * The user directory (POST /user_directory/search) as Synapse answers it by default
 * (`search_all_users: false`): the users who share a room with the searcher, and the users
 * joined to a room with a public join rule or world_readable history. As Synapse (its
 * users_who_share_private_rooms holds no pair of a user with themselves), the searcher is
 * found only through a public room (Complement user_directory_display_names_test.go). Local users only:
 * their profiles come from the accounts table; remote users are not searched.
 */
@Injectable()
export class UserDirectoryService {
  constructor(@Inject(DB) private readonly db: Db) {}

  async search(searcher: string, searchTerm: string, limit: number): Promise<{ results: DirectoryUser[]; limited: boolean }> {
    const terms = [...new Set(wordsOf(searchTerm))];
    if (terms.length === 0 || limit === 0) return { results: [], limited: false };
    // Narrow in SQL (every term appears somewhere in the user id or display name), rank in code.
    const { rows } = await this.db.query<CandidateRow>(
      `WITH own_rooms AS (
         SELECT room_nid FROM room_memberships WHERE user_id = $1 AND membership = 'join'
       ), open_rooms AS (
         SELECT c.room_nid FROM current_state c
         JOIN event_types t ON t.type_nid = c.type_nid
         JOIN event_state_keys k ON k.state_key_nid = c.state_key_nid
         JOIN events e ON e.event_nid = c.event_nid
         WHERE k.state_key = '' AND (
           (t.event_type = 'm.room.join_rules' AND (e.json::jsonb -> 'content' ->> 'join_rule') = 'public')
           OR (t.event_type = 'm.room.history_visibility' AND (e.json::jsonb -> 'content' ->> 'history_visibility') = 'world_readable'))
       ), visible AS (
         SELECT m.user_id, bool_or(m.room_nid IN (SELECT room_nid FROM own_rooms) AND m.user_id <> $1) AS shares_room
         FROM room_memberships m
         WHERE m.membership = 'join' AND ((m.room_nid IN (SELECT room_nid FROM own_rooms) AND m.user_id <> $1) OR m.room_nid IN (SELECT room_nid FROM open_rooms))
         GROUP BY m.user_id
       )
       SELECT a.user_id, a.profile, v.shares_room FROM visible v
       JOIN accounts a ON a.user_id = v.user_id
       WHERE NOT a.deactivated
         AND (SELECT bool_and(strpos(lower(a.user_id || ' ' || COALESCE(a.profile ->> 'displayname', '')), term) > 0) FROM unnest($2::text[]) AS term)`,
      [searcher, terms],
    );
    const ranked = rows
      .map((row) => {
        const profile = (typeof row.profile === 'string' ? JSON.parse(row.profile) : row.profile ?? {}) as Record<string, unknown>;
        const displayName = typeof profile.displayname === 'string' && profile.displayname !== '' ? profile.displayname : undefined;
        const avatarUrl = typeof profile.avatar_url === 'string' && profile.avatar_url !== '' ? profile.avatar_url : undefined;
        const user: DirectoryUser = { user_id: row.user_id, ...(displayName ? { display_name: displayName } : {}), ...(avatarUrl ? { avatar_url: avatarUrl } : {}) };
        return { user, score: matchScore(terms, row.user_id, displayName, avatarUrl, row.shares_room) };
      })
      .filter((r) => r.score > 0)
      .sort((a, b) => b.score - a.score || (a.user.user_id < b.user.user_id ? -1 : a.user.user_id > b.user.user_id ? 1 : 0));
    return { results: ranked.slice(0, limit).map((r) => r.user), limited: ranked.length > limit };
  }
}
