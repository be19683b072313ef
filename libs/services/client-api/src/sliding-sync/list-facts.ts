import { spaceChildren } from '@tessera/protocol';
import { getCurrentStateEvents, getEvents, getUserMembershipHistory, type Queryable, type UserMembership } from '@tessera/storage';

/**
 * What some list filters and the server's list itself need besides the rooms' activity:
 * the user's room tags (`tags` / `not_tags`), the children of spaces (`spaces`), and how the
 * user came to be out of a room (MSC4186 "Lists": kicked and banned rooms are listed, rooms
 * the user left themselves are not, rooms banned from without ever joining are not).
 */

/** The user's tags per room: the keys of `tags` in each room's m.tag account data (read from client-api's account_data table). */
export async function getRoomTags(db: Queryable, userId: string): Promise<Map<string, Set<string>>> {
  const { rows } = await db.query<{ room_id: string; content: unknown }>("SELECT room_id, content FROM account_data WHERE user_id = $1 AND type = 'm.tag' AND room_id <> ''", [userId]);
  const out = new Map<string, Set<string>>();
  for (const r of rows) {
    const content = (typeof r.content === 'string' ? JSON.parse(r.content) : r.content) as { tags?: unknown } | null;
    const tags = content?.tags;
    if (tags && typeof tags === 'object' && !Array.isArray(tags) && Object.keys(tags).length > 0) out.set(r.room_id, new Set(Object.keys(tags)));
  }
  return out;
}

/**
 * The rooms that are children of any of these spaces: the state keys of their current
 * m.space.child events with a valid `via` (the spec: others are not children). Only direct
 * children (the MSC: servers must not walk subspaces); `spaces` are those the caller found the
 * user joined to.
 */
export async function getSpaceChildRooms(db: Queryable, spaces: readonly string[]): Promise<Set<string>> {
  const out = new Set<string>();
  const states = await Promise.all(spaces.map((spaceId) => getCurrentStateEvents(db, spaceId, ['m.space.child'])));
  for (const state of states) {
    const events = state
      .filter((e) => e.stateKey !== null)
      .map((e) => ({ type: e.type, state_key: e.stateKey!, sender: e.sender, content: (e.json.content ?? {}) as Record<string, unknown>, origin_server_ts: e.originServerTs }));
    for (const child of spaceChildren(events)) out.add(child.state_key);
  }
  return out;
}

/** How a membership of leave or ban came about. */
export type Departure = 'left' | 'kicked' | 'banned' | 'banned-never-joined';

/** Entries kept of the departure of membership events (they never change); past it the record starts again. */
const MAX_DEPARTURES = 100_000;

/**
 * The departure kind of leave and ban memberships, remembered per membership event (an event's
 * sender and the user's history before it do not change), so a long poll asks once per event.
 */
export class Departures {
  private readonly known = new Map<string, Departure>();

  async of(db: Queryable, memberships: readonly UserMembership[]): Promise<Map<string, Departure>> {
    const out = new Map<string, Departure>();
    const leaves: UserMembership[] = [];
    const bans: UserMembership[] = [];
    for (const m of memberships) {
      if (m.membership !== 'leave' && m.membership !== 'ban') continue;
      const known = this.known.get(m.eventId);
      if (known) out.set(m.eventId, known);
      else (m.membership === 'leave' ? leaves : bans).push(m);
    }
    if (leaves.length > 0) {
      const events = await getEvents(db, leaves.map((m) => m.eventId));
      for (const m of leaves) {
        const event = events.get(m.eventId);
        // A leave another user sent is a kick (or a withdrawn invite, which Synapse lists too).
        this.remember(out, m.eventId, event && event.sender !== m.userId ? 'kicked' : 'left');
      }
    }
    for (const m of bans) {
      const history = await getUserMembershipHistory(db, m.roomId, m.userId);
      const joined = history.some((h) => h.membership === 'join' && h.streamPos < m.streamPos);
      this.remember(out, m.eventId, joined ? 'banned' : 'banned-never-joined');
    }
    return out;
  }

  private remember(out: Map<string, Departure>, eventId: string, kind: Departure): void {
    if (this.known.size >= MAX_DEPARTURES) this.known.clear();
    this.known.set(eventId, kind);
    out.set(eventId, kind);
  }
}
