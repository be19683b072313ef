import { Inject, Injectable } from '@nestjs/common';
import { DB } from '@tessera/http';
import { getCurrentStateEvents, getCurrentStreamPosition, getEvents, getStateAfterEvent, getUserMemberships, type Db, type StoredEvent } from '@tessera/storage';
import { BundledAggregations } from '../relations/bundled-aggregations.js';
import type { ClientEvent } from '../rooms/client-event.js';
import { filterLimit } from '../rooms/event-filter.js';
import { encodePaginationToken } from '../rooms/pagination-token.js';
import { RoomHistoryService, type Viewer } from '../rooms/room-history.service.js';
import { RoomReads } from '../rooms/room-reads.js';
import { parseSearchRequest, searchedRooms, searchedTypes, type GroupKey, type RoomEventsCriteria } from './search-request.js';
import { decodeSearchCursor, encodeSearchCursor, type SearchCursor } from './search-token.js';
import { searchTermWords, searchWindow, tsQueryOf, type WindowMatch } from './search-window.js';

/** Events a window reads: the bound on the work of one window (one SQL query). */
export const SEARCH_WINDOW_SIZE = 2000;
/** Windows one request reads at most to fill a page: at most 6,000 events per request (measured: a 2,000-event window of 10 rooms in a 100,000-event log takes about 70 ms on PostgreSQL, 130-330 ms on PGlite). */
export const SEARCH_WINDOWS_PER_REQUEST = 3;
const DEFAULT_PAGE = 10;
const MAX_PAGE = 100;

interface SearchResult {
  rank: number;
  result: ClientEvent;
  context?: Record<string, unknown>;
}

interface GroupValue {
  results: string[];
  order: number;
  next_batch?: string;
}

/**
 * POST /search, category room_events (spec "Server Side Search"): the messages, names and
 * topics of the rooms the user is joined to, with history visibility applied as /messages
 * applies it. Redacted events are never matched (their stored JSON has no content left, and
 * they are excluded outright).
 *
 * Order: `rank` is ts_rank within a window of the newest events (SEARCH_WINDOW_SIZE), and
 * windows follow one another from the newest; `recent` is stream order. Pages continue with
 * next_batch (see SearchCursor).
 */
@Injectable()
export class SearchService {
  /** The bounds of one request's work (tests lower them to cross windows with few events). */
  readonly bounds = { windowSize: SEARCH_WINDOW_SIZE, windowsPerRequest: SEARCH_WINDOWS_PER_REQUEST };

  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(RoomReads) private readonly reads: RoomReads,
    @Inject(RoomHistoryService) private readonly history: RoomHistoryService,
    @Inject(BundledAggregations) private readonly aggregations: BundledAggregations,
  ) {}

  async search(viewer: Viewer, body: unknown, nextBatch: string | undefined): Promise<{ search_categories: Record<string, unknown> }> {
    const criteria = parseSearchRequest(body);
    const cursor = nextBatch !== undefined && nextBatch !== '' ? decodeSearchCursor(nextBatch) : undefined;
    if (!criteria) return { search_categories: {} };
    return { search_categories: { room_events: await this.roomEvents(viewer, criteria, cursor) } };
  }

  private async roomEvents(viewer: Viewer, c: RoomEventsCriteria, cursor: SearchCursor | undefined): Promise<Record<string, unknown>> {
    const limit = filterLimit(c.filter, DEFAULT_PAGE, MAX_PAGE);
    const joined = (await getUserMemberships(this.db, viewer.userId, ['join'])).map((m) => m.roomId);
    const rooms = searchedRooms(joined, c.filter);
    const types = searchedTypes(c.keys, c.filter);
    const words = await searchTermWords(this.db, c.searchTerm);
    const group = cursor?.group;
    const substring = unspacedTerm(c.searchTerm);

    const found: Array<{ match: WindowMatch; event: StoredEvent }> = [];
    const seenWords = new Set(substring ? [...words, substring] : words);
    let count = 0;
    let next: SearchCursor | undefined;
    let consumed: WindowMatch[] = [];

    if (rooms.length > 0 && types.length > 0 && words.length > 0) {
      let before = cursor?.before ?? (await getCurrentStreamPosition(this.db)) + 1;
      let offset = cursor?.offset ?? 0;
      for (let w = 0; w < this.bounds.windowsPerRequest; w++) {
        const window = await searchWindow(this.db, {
          roomIds: rooms, before, size: this.bounds.windowSize, types, tsQuery: tsQueryOf(words),
          senders: c.filter.senders, notSenders: c.filter.not_senders, containsUrl: c.filter.contains_url, substring,
        });
        const ordered = this.order(window.matches.filter((m) => !group || groupValue(m, group.key) === group.value), c.orderBy);
        count += ordered.length;
        while (found.length < limit && offset < ordered.length) {
          const slice = ordered.slice(offset, offset + (limit - found.length));
          offset += slice.length;
          found.push(...(await this.visible(viewer.userId, slice)));
        }
        consumed = ordered.slice(0, offset);
        const more = window.scanned >= this.bounds.windowSize && window.lowest !== null;
        if (offset < ordered.length) {
          next = { before, offset };
          break;
        }
        if (!more) {
          // A full page gets a next_batch even when nothing follows (as Synapse: the page after is
          // empty, without one); a page that is not full is the last.
          next = found.length >= limit ? { before, offset } : undefined;
          break;
        }
        // This window is used up: the next starts below it.
        before = window.lowest!;
        offset = 0;
        consumed = [];
        next = { before, offset };
        if (found.length >= limit) break;
      }
    }

    const results: SearchResult[] = [];
    const formatted = await this.format(viewer, found.map((f) => f.event));
    for (const [i, { match }] of found.entries()) {
      for (const word of wordsIn(match.text)) if (words.some((w) => word.startsWith(w))) seenWords.add(word);
      results.push({ rank: match.rank, result: formatted[i]! });
    }
    if (c.eventContext) {
      for (const [i, { event }] of found.entries()) results[i]!.context = await this.context(viewer, event, c.eventContext);
    }

    const out: Record<string, unknown> = { count, highlights: [...seenWords], results };
    if (next) out.next_batch = encodeSearchCursor(group ? { ...next, group } : next);
    if (c.includeState) out.state = await this.currentState(viewer, [...new Set(found.map((f) => f.event.roomId))]);
    if (c.groupBy.length > 0) out.groups = this.groups(c.groupBy, found.map((f) => f.match), consumed, next);
    return out;
  }

  private order(matches: WindowMatch[], orderBy: 'rank' | 'recent'): WindowMatch[] {
    // Ties broken by stream position so that the same window always gives the same order.
    return [...matches].sort((a, b) => (orderBy === 'rank' && b.rank !== a.rank ? b.rank - a.rank : b.streamPos - a.streamPos));
  }

  /** Of these matches (in order), the events the user may see. */
  private async visible(userId: string, matches: WindowMatch[]): Promise<Array<{ match: WindowMatch; event: StoredEvent }>> {
    const events = await getEvents(this.db, matches.map((m) => m.eventId));
    const byRoom = new Map<string, StoredEvent[]>();
    for (const m of matches) {
      const e = events.get(m.eventId);
      if (!e || e.redactedBy) continue;
      if (!byRoom.has(e.roomId)) byRoom.set(e.roomId, []);
      byRoom.get(e.roomId)!.push(e);
    }
    const visible = new Set<string>();
    for (const [roomId, list] of byRoom) for (const e of await this.reads.visibleEvents(userId, roomId, list)) visible.add(e.eventId);
    return matches.filter((m) => visible.has(m.eventId)).map((m) => ({ match: m, event: events.get(m.eventId)! }));
  }

  /** The results as timeline events, with their bundled aggregations (edits, threads, references), as Synapse gives them. */
  private async format(viewer: Viewer, events: StoredEvent[]): Promise<ClientEvent[]> {
    const formatted = await this.reads.toClientEvents(events, viewer, true);
    for (const roomId of new Set(events.map((e) => e.roomId))) {
      const picked = events.flatMap((e, i) => (e.roomId === roomId ? [i] : []));
      await this.aggregations.bundle(viewer, roomId, picked.map((i) => events[i]!), picked.map((i) => formatted[i]!));
    }
    return formatted;
  }

  /**
   * Events around a result, visible to the user, with pagination tokens for /messages, and
   * (include_profile) the senders' display names and avatars as they were at the last
   * event shown, as Synapse takes them.
   */
  private async context(viewer: Viewer, event: StoredEvent, opts: NonNullable<RoomEventsCriteria['eventContext']>): Promise<Record<string, unknown>> {
    const pos = event.streamPos!;
    const before = opts.beforeLimit > 0 ? await this.history.page(viewer.userId, event.roomId, { dir: 'b', from: pos - 1, limit: opts.beforeLimit }) : { events: [], next: pos - 1 };
    const after = opts.afterLimit > 0 ? await this.history.page(viewer.userId, event.roomId, { dir: 'f', from: pos, limit: opts.afterLimit }) : { events: [], next: pos };
    const lastShown = after.events[after.events.length - 1] ?? event;
    const context: Record<string, unknown> = {
      start: encodePaginationToken(before.next ?? (before.events[before.events.length - 1]?.streamPos ?? pos) - 1),
      end: encodePaginationToken(after.next ?? lastShown.streamPos ?? pos),
      events_before: await this.reads.toClientEvents(before.events, viewer, true),
      events_after: await this.reads.toClientEvents(after.events, viewer, true),
    };
    if (opts.includeProfile) {
      const senders = new Set([...before.events, event, ...after.events].map((e) => e.sender));
      const triples = ((await getStateAfterEvent(this.db, lastShown.eventId)) ?? []).filter(([type, key]) => type === 'm.room.member' && senders.has(key));
      const members = await getEvents(this.db, triples.map(([, , id]) => id));
      const profiles: Record<string, { displayname?: string; avatar_url?: string }> = {};
      for (const [, userId, id] of triples) {
        const content = (members.get(id)?.json.content ?? {}) as Record<string, unknown>;
        const profile: { displayname?: string; avatar_url?: string } = {};
        if (typeof content.displayname === 'string') profile.displayname = content.displayname;
        if (typeof content.avatar_url === 'string') profile.avatar_url = content.avatar_url;
        profiles[userId] = profile;
      }
      context.profile_info = profiles;
    }
    return context;
  }

  /** include_state: the current state of each room with results (the user is joined to each). */
  private async currentState(viewer: Viewer, roomIds: string[]): Promise<Record<string, ClientEvent[]>> {
    const state: Record<string, ClientEvent[]> = {};
    for (const roomId of roomIds) state[roomId] = await this.reads.toClientEvents(await getCurrentStateEvents(this.db, roomId), viewer);
    return state;
  }

  /**
   * groups: this page's results by room or sender, `order` the rank of the group's first
   * result on the page. Each group's next_batch continues the same window restricted to the
   * group: its offset counts the group's matches already handed out in that window.
   */
  private groups(keys: GroupKey[], shown: WindowMatch[], consumed: WindowMatch[], next: SearchCursor | undefined): Record<string, Record<string, GroupValue>> {
    const out: Record<string, Record<string, GroupValue>> = {};
    for (const key of keys) {
      const groups: Record<string, GroupValue> = {};
      for (const m of shown) {
        const value = groupValue(m, key);
        groups[value] ??= { results: [], order: Object.keys(groups).length + 1 };
        groups[value].results.push(m.eventId);
      }
      if (next) {
        for (const [value, g] of Object.entries(groups)) {
          const offset = next.offset === 0 ? 0 : consumed.filter((m) => groupValue(m, key) === value).length;
          g.next_batch = encodeSearchCursor({ before: next.before, offset, group: { key, value } });
        }
      }
      out[key] = groups;
    }
    return out;
  }
}

/**
 * Chinese, Japanese and Thai are written without spaces: the text search sees a whole run of
 * them as one word, so a word inside a run is found by substring instead.
 */
const UNSPACED_SCRIPTS = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Thai}]/u;

function unspacedTerm(term: string): string | undefined {
  const trimmed = term.trim();
  return UNSPACED_SCRIPTS.test(trimmed) ? trimmed : undefined;
}

function groupValue(m: WindowMatch, key: GroupKey): string {
  return key === 'room_id' ? m.roomId : m.sender;
}

/** The words of a text as the 'simple' text search configuration sees them (close enough for highlights). */
function wordsIn(text: string): string[] {
  return (text.toLowerCase().match(/[\p{L}\p{N}_]+(?:[-'][\p{L}\p{N}_]+)*/gu) ?? []);
}
