import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import { DB } from '@tessera/http';
import { evaluatePushRules, getRoomVersion, isKnownRoomVersion, PowerContext, type PushContext, type PushRuleset, type RoomEvent } from '@tessera/protocol';
import { getCurrentStateEvent, getCurrentStateEvents, getRoomMemberCounts, getRoomTimeline, type Db, type StoredEvent } from '@tessera/storage';
import { StreamChanges } from '../stream-changes.js';
import { PushRulesService } from '../user-data/push-rules.service.js';
import { SyncNotifier } from './sync-notifier.js';
import { MAIN_TIMELINE, RoomTally, tallyEvents } from './unread-counts.js';

/**
 * Events counted at most when a count starts from the database: a user who never read a
 * long-lived room is shown the count over its latest events (a bound on a cold /sync's cost).
 */
const MAX_COUNTED_EVENTS = 1000;
const MAX_CACHED = 50_000;

/** What push rules need to know about a room, as of `position` (current state then). */
interface RoomFacts {
  position: number;
  memberCount: number;
  power: PowerContext;
  displayNames: Map<string, Promise<string | undefined>>;
}

/**
 * Unread notification counts for /sync by the user's push rules (spec "Receiving
 * notifications"): each event after the user's read receipt (m.read or m.read.private,
 * whichever is later; per thread with threaded receipts) and their own latest event counts when
 * their rules give it `notify`, and as a highlight when they set the highlight tweak.
 *
 * Rules are evaluated when a /sync asks, against the room's current state (member count,
 * power levels, the user's display name), not at the time each event arrived as Synapse does.
 * Counts are carried forward in memory from the stream notifications (UnreadCounts); the
 * user's ruleset and each room's facts are cached, a ruleset until the user's account data
 * changes, a room's facts until a state event of the room goes by.
 */
@Injectable()
export class NotificationCounter implements OnModuleDestroy {
  private readonly rulesets = new Map<string, Promise<PushRuleset>>();
  private readonly rooms = new Map<string, Promise<RoomFacts>>();
  private readonly stopListening: () => void;

  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(SyncNotifier) private readonly notifier: SyncNotifier,
    @Inject(PushRulesService) private readonly pushRules: PushRulesService,
    @Inject(StreamChanges) changes: StreamChanges,
  ) {
    // Push rules are account data (m.push_rules): any change of the user's drops their cached ruleset.
    this.stopListening = changes.listen((change) => {
      if (change.stream === 'account_data') this.rulesets.delete(change.userId);
    });
  }

  onModuleDestroy(): void {
    this.stopListening();
  }

  /** The user's counts in the room at stream position `upTo`; `receiptMoved`: count again from the database. */
  async counts(userId: string, roomId: string, upTo: number, receiptMoved: boolean): Promise<RoomTally> {
    const unread = this.notifier.unread;
    const stamp = unread.stamp(roomId);
    const known = receiptMoved ? undefined : unread.get(userId, roomId);
    if (known && known.position === upTo) return known;
    if (known && known.position < upTo) {
      const recent = this.notifier.recent;
      const notes = recent.eventsBetween(known.position, upTo, new Set([roomId]));
      const events = notes && (await recent.storedEvents(notes));
      if (events) {
        const tally = tallyEvents(known.copy(upTo), userId, events, await this.evaluator(userId, roomId, upTo));
        unread.remember(userId, roomId, tally, stamp);
        return tally;
      }
    }
    const tally = await this.countFromDatabase(userId, roomId, upTo);
    unread.remember(userId, roomId, tally, stamp);
    return tally;
  }

  private async countFromDatabase(userId: string, roomId: string, upTo: number): Promise<RoomTally> {
    const { rows } = await this.db.query<{ thread_id: string; pos: string | number }>(
      `SELECT rc.thread_id, MAX(e.stream_pos) AS pos FROM receipts rc JOIN events e ON e.event_id = rc.event_id
        WHERE rc.room_id = $1 AND rc.user_id = $2 AND rc.receipt_type IN ('m.read', 'm.read.private') AND e.stream_pos <= $3
        GROUP BY rc.thread_id`,
      [roomId, userId, upTo],
    );
    const receipts = new Map(rows.map((r) => [r.thread_id, Number(r.pos)]));
    // An unthreaded receipt, or the user's own event, covers every thread; a threaded receipt (thread_id "main" or a root) its own.
    const own = await this.db.query<{ pos: string | number | null }>(
      `SELECT MAX(e.stream_pos) AS pos FROM events e WHERE e.room_nid = (SELECT room_nid FROM rooms WHERE room_id = $1) AND e.sender = $2 AND e.stream_pos <= $3`,
      [roomId, userId, upTo],
    );
    const unthreaded = Math.max(receipts.get('') ?? 0, Number(own.rows[0]?.pos ?? 0));
    const readUpTo = (thread: string) => Math.max(unthreaded, receipts.get(thread === MAIN_TIMELINE ? 'main' : thread) ?? 0);
    const newestFirst = await getRoomTimeline(this.db, roomId, { direction: 'b', from: upTo + 1, to: unthreaded, limit: MAX_COUNTED_EVENTS });
    const evaluate = await this.evaluator(userId, roomId, upTo);
    return tallyEvents(new RoomTally(upTo), userId, newestFirst.reverse(), evaluate, readUpTo);
  }

  /**
   * Evaluates the user's push rules for events of the room, against the room's facts as of
   * `upTo` (also used by GET /notifications).
   */
  async evaluator(userId: string, roomId: string, upTo: number): Promise<(event: Record<string, unknown>) => ReturnType<typeof evaluatePushRules>> {
    const [ruleset, facts] = await Promise.all([this.ruleset(userId), this.roomFacts(roomId, upTo)]);
    let displayName = facts.displayNames.get(userId);
    if (!displayName) {
      displayName = getCurrentStateEvent(this.db, roomId, 'm.room.member', userId).then((e) => {
        const name = e?.json.content?.displayname;
        return typeof name === 'string' ? name : undefined;
      });
      facts.displayNames.set(userId, displayName);
    }
    const ctx: PushContext = {
      userId,
      displayName: await displayName,
      memberCount: facts.memberCount,
      senderMayNotify: () => false,
    };
    return (event) => {
      const sender = typeof event.sender === 'string' ? event.sender : '';
      ctx.senderMayNotify = (key) => facts.power.userLevel(sender) >= facts.power.notificationLevel(key);
      return evaluatePushRules(ruleset, event, ctx);
    };
  }

  private ruleset(userId: string): Promise<PushRuleset> {
    let ruleset = this.rulesets.get(userId);
    if (!ruleset) {
      ruleset = this.pushRules.ruleset(userId);
      ruleset.catch(() => this.rulesets.delete(userId));
      if (this.rulesets.size >= MAX_CACHED) this.rulesets.clear();
      this.rulesets.set(userId, ruleset);
    }
    return ruleset;
  }

  /** The room's facts, reloaded when a state event of the room went by since they were read (or that cannot be told). */
  private async roomFacts(roomId: string, upTo: number): Promise<RoomFacts> {
    const cached = this.rooms.get(roomId);
    if (cached) {
      const facts = await cached;
      if (facts.position >= upTo) return facts;
      const notes = this.notifier.recent.eventsBetween(facts.position, upTo, new Set([roomId]));
      if (notes && notes.every((n) => n.addsState.length === 0)) {
        facts.position = upTo;
        return facts;
      }
    }
    // Read as of the position heard of now: anything after it is checked against the stream next time.
    const position = Math.max(upTo, this.notifier.positions().events);
    const loading = this.loadRoomFacts(roomId, position);
    loading.catch(() => this.rooms.delete(roomId));
    if (this.rooms.size >= MAX_CACHED) this.rooms.clear();
    this.rooms.set(roomId, loading);
    return loading;
  }

  private async loadRoomFacts(roomId: string, position: number): Promise<RoomFacts> {
    const [state, counts] = await Promise.all([getCurrentStateEvents(this.db, roomId, ['m.room.create', 'm.room.power_levels']), getRoomMemberCounts(this.db, roomId)]);
    const event = (type: string) => state.find((e) => e.type === type && e.stateKey === '');
    const create = event('m.room.create');
    const versionId = (create?.json.content as Record<string, unknown> | undefined)?.room_version ?? '1';
    const version = getRoomVersion(isKnownRoomVersion(versionId) ? versionId : '1');
    const asRoomEvent = (e: StoredEvent | undefined) => e?.json as RoomEvent | undefined;
    return {
      position,
      memberCount: counts.join ?? 0,
      power: new PowerContext(asRoomEvent(event('m.room.power_levels')), asRoomEvent(create), version),
      displayNames: new Map(),
    };
  }
}
