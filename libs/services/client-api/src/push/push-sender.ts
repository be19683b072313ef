import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { subscribeOn, Subjects, type BusTransport, type Subscription } from '@tessera/bus';
import type { HomeserverConfig } from '@tessera/config';
import { BUS, CONFIG, DB, LOGGER } from '@tessera/http';
import {
  getConsumerCursor,
  getCurrentStateEvent,
  getCurrentStreamPosition,
  getEventsSince,
  getUserMemberships,
  saveConsumerCursor,
  type Db,
  type StoredEvent,
} from '@tessera/storage';
import type { Logger } from 'pino';
import { NotificationCounter } from '../sync/notification-counter.js';
import { GatewayClient, type GatewayAnswer } from './gateway-client.js';
import { GatewayQueues } from './gateway-queues.js';
import { isEventIdOnly, notifyRequestBody, type EventDetails, type PusherTarget } from './notify-request.js';
import { acquirePushLease, releasePushLease } from './push-lease.js';
import { PUSH_SENDER_SETTINGS, type PushSenderSettings } from './push-sender-settings.js';
import { anyHttpPusher, pushTargetsForBatch } from './push-targets.store.js';
import { pushersStore } from './pushers.store.js';

/** The cursor of the push sender in consumer_cursors. */
export const PUSH_SENDER_CONSUMER = 'client-api:push-sender';
const BATCH = 100;
/** Tries of one event whose handling fails (a database error) before it is skipped. */
const MAX_EVENT_FAILURES = 3;
/** Rooms whose counts are read at once for the `unread` badge. */
const COUNT_CONCURRENCY = 8;
/**
 * The cursor is written at most this often (and when the sender stops): it only tells a new
 * holder where to start, and a write per group commit would cost a commit per group. After a
 * crash, the events of up to this long before it may be pushed a second time.
 */
const CURSOR_SAVE_INTERVAL_MS = 1_000;

/**
 * Sends push notifications to push gateways (spec "Push notifications": HTTP pushers; Push
 * Gateway API POST /_matrix/push/v1/notify).
 *
 * One client-api replica at a time is the sender: the holder of the push sender lease
 * (push-lease.ts), taken and renewed every third of its lifetime; when the holder dies,
 * another takes over once the lease expires. The holder reads the event log from its cursor
 * (consumer_cursors, PUSH_SENDER_CONSUMER) in stream order; stream.events notifications only
 * wake it, and each lease round wakes it too, so a notification lost on the bus delays a push
 * by at most a round and loses nothing. The cursor moves once an event's notifications are
 * queued, not delivered: a notification still queued or waiting for a retry when the process
 * stops is lost (a missed push, never data; the event is in /sync). A new holder starts from
 * the saved cursor (at most maxCatchUpEvents behind the stream); the first start ever starts
 * at the stream's end.
 *
 * For each event: the http pushers of the room's local joined members other than the sender
 * (and of the invited user of an invite); each user's push rules are evaluated
 * (NotificationCounter.evaluator, as /sync's counts and GET /notifications); on `notify`, a
 * POST to each of their pushers (notify-request.ts) through per-gateway queues with retries
 * (gateway-queues.ts) and the address guard (gateway-client.ts). Pushkeys the gateway answers
 * as `rejected` lose their pushers (spec: "Homeservers must cease sending notification
 * requests for these pushkeys and remove the associated pushers").
 *
 * Membership and room facts are those of the current state when the event is handled (a
 * moment after it is stored), as /sync's unread counts.
 */
@Injectable()
export class PushSender implements OnModuleInit, OnModuleDestroy {
  readonly replicaId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private readonly client: GatewayClient;
  private readonly queues: GatewayQueues;
  private subscription: Subscription | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  private leaseRound: Promise<void> = Promise.resolve();
  private lastRenewedAt = 0;
  private holding = false;
  /** Incremented each time the lease is taken: a pump of an earlier term stops. */
  private term = 0;
  /** The last position handled, while holding (read from the database when the lease is taken). */
  private cursor: number | undefined;
  /** The cursor as last written to consumer_cursors (a write is skipped when it did not move). */
  private savedCursor: number | undefined;
  private savedAt = 0;
  private pumping: Promise<void> | undefined;
  private again = false;
  private failing: { eventId: string; count: number } | undefined;
  private stopped = false;
  /**
   * The newest stream position announced on stream.events: committed, with everything before it
   * (persistence commits in position order). A pump woken by a notification reads the log up to
   * it without asking the database where the stream ends; the lease rounds still read the counter,
   * so a lost notification delays pushes, loses none.
   */
  private notified = 0;
  /** A lease round asked for a pump: it reads the counter once. */
  private readCounter = false;

  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(BUS) private readonly bus: BusTransport,
    @Inject(CONFIG) private readonly config: HomeserverConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(NotificationCounter) private readonly counter: NotificationCounter,
    @Inject(PUSH_SENDER_SETTINGS) private readonly settings: PushSenderSettings,
  ) {
    try {
      this.client = new GatewayClient({ allowedCidrs: settings.allowedCidrs, timeoutMs: settings.requestTimeoutMs });
    } catch (err) {
      throw new Error(`push.allowed_cidrs: ${(err as Error).message}`);
    }
    this.queues = new GatewayQueues(this.client, settings, logger);
  }

  async onModuleInit(): Promise<void> {
    this.subscription = await subscribeOn(this.bus, Subjects.streamEvents, (n) => {
      if (n.position > this.notified) this.notified = n.position;
      this.wake();
    });
    await this.renewLease();
    this.leaseTimer = setInterval(() => void this.renewLease(), Math.max(50, Math.floor(this.settings.leaseTtlMs / 3)));
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    clearInterval(this.leaseTimer);
    await this.subscription?.unsubscribe();
    await this.leaseRound;
    await this.pumping;
    this.queues.stop();
    this.client.close();
    if (this.holding) {
      await this.writeCursor(true).catch((err: unknown) => this.logger.warn({ err }, 'push: could not save the cursor'));
      this.holding = false;
      await releasePushLease(this.db, this.replicaId).catch((err: unknown) => this.logger.warn({ err }, 'push: could not release the sender lease'));
    }
  }

  /** Whether this replica sends pushes now. */
  isSender(): boolean {
    return this.holding;
  }

  /**
   * Resolves once every event stored so far has been handled and every notification
   * delivered or dropped (tests; a replica that is not the sender only waits for its queues).
   */
  async settled(): Promise<void> {
    for (;;) {
      await this.leaseRound;
      if (this.pumping) {
        await this.pumping;
        continue;
      }
      if (this.holding && !this.stopped && (this.cursor ?? -1) < (await getCurrentStreamPosition(this.db))) {
        this.readCounter = true;
        this.wake();
        continue;
      }
      await this.queues.idle();
      if (!this.pumping) return;
    }
  }

  /** One lease round (rounds never overlap); the holder then catches up with the log. */
  private renewLease(): Promise<void> {
    this.leaseRound = this.leaseRound.then(async () => {
      if (this.stopped) return;
      const ttl = this.settings.leaseTtlMs;
      try {
        const held = await acquirePushLease(this.db, this.replicaId, ttl);
        this.lastRenewedAt = Date.now();
        if (held && !this.holding) {
          this.holding = true;
          this.term++;
          this.cursor = undefined;
          this.savedCursor = undefined;
          this.logger.info({ replica: this.replicaId }, 'push: this replica is now the push sender');
        } else if (!held && this.holding) {
          this.holding = false;
          this.logger.info({ replica: this.replicaId }, 'push: another replica took the push sender lease');
        }
      } catch (err) {
        this.logger.warn({ err }, 'push: sender lease round failed');
        // A lease we could not renew may be someone else's by now: stop sending in time.
        if (this.holding && Date.now() - this.lastRenewedAt > ttl * 0.8) this.holding = false;
      }
      if (this.holding) {
        this.readCounter = true;
        this.wake();
      }
    });
    return this.leaseRound;
  }

  private wake(): void {
    if (!this.holding || this.stopped) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = this.pump()
      .catch((err: unknown) => this.logger.warn({ err }, 'push: reading the stream failed; the next lease round tries again'))
      .finally(() => {
        this.pumping = undefined;
        if (this.again) {
          this.again = false;
          this.wake();
        }
      });
  }

  /** Handles the stream from the cursor to its end, in batches, saving the cursor after each. */
  private async pump(): Promise<void> {
    const term = this.term;
    const current = () => this.holding && !this.stopped && this.term === term;
    while (current()) {
      let upTo: number;
      if (this.cursor !== undefined && this.notified > this.cursor) upTo = this.notified;
      else if (this.cursor === undefined || this.readCounter) {
        this.readCounter = false;
        upTo = await getCurrentStreamPosition(this.db);
      } else return;
      let cursor = this.cursor ?? (await this.startingCursor(upTo));
      if (!current()) return;
      this.cursor = cursor;
      if (cursor >= upTo) return;
      // Nobody has an http pusher (a server without mobile clients): nothing to read.
      if (!(await anyHttpPusher(this.db))) {
        if (current()) await this.saveCursor(term, upTo);
        return;
      }
      const events = await getEventsSince(this.db, cursor, BATCH, upTo);
      const targets = await pushTargetsForBatch(
        this.db,
        events.map((e) => e.roomId),
        events.map(inviteeOf).filter((u): u is string => u !== null),
      );
      for (const event of events) {
        if (!current()) break;
        try {
          await this.handleOrSkip(event, upTo, targets);
        } catch (err) {
          // Tried again from this event at the next wake-up.
          await this.saveCursor(term, cursor);
          throw err;
        }
        cursor = event.streamPos!;
      }
      // A short batch reached upTo: positions without timeline events (outliers) are passed too.
      if (current() && events.length < BATCH) cursor = upTo;
      await this.saveCursor(term, cursor);
    }
  }

  private async saveCursor(term: number, cursor: number): Promise<void> {
    if (this.term !== term) return;
    this.cursor = Math.max(this.cursor ?? 0, cursor);
    await this.writeCursor(false);
  }

  private async writeCursor(force: boolean): Promise<void> {
    if (this.cursor === undefined || this.savedCursor === this.cursor) return;
    if (!force && Date.now() - this.savedAt < CURSOR_SAVE_INTERVAL_MS) return;
    const cursor = this.cursor;
    this.savedAt = Date.now();
    await saveConsumerCursor(this.db, PUSH_SENDER_CONSUMER, cursor);
    this.savedCursor = cursor;
  }

  /** Where a new holder starts: the saved cursor, at most maxCatchUpEvents behind; on the very first start, the end of the stream. */
  private async startingCursor(upTo: number): Promise<number> {
    const saved = Number(await getConsumerCursor(this.db, PUSH_SENDER_CONSUMER));
    let start = saved;
    if (saved === 0) start = upTo;
    else if (upTo - saved > this.settings.maxCatchUpEvents) {
      start = upTo - this.settings.maxCatchUpEvents;
      this.logger.warn({ saved, upTo, start }, 'push: far behind the stream, older events are not pushed');
    }
    if (start !== saved) await saveConsumerCursor(this.db, PUSH_SENDER_CONSUMER, start);
    return start;
  }

  /** Throws when the event should be tried again later; skips it (a lost push) after MAX_EVENT_FAILURES tries. */
  private async handleOrSkip(event: StoredEvent, upTo: number, targets: BatchTargets): Promise<void> {
    try {
      await this.handle(event, upTo, targets);
      this.failing = undefined;
    } catch (err) {
      const count = this.failing?.eventId === event.eventId ? this.failing.count + 1 : 1;
      this.failing = { eventId: event.eventId, count };
      if (count < MAX_EVENT_FAILURES) throw err;
      this.logger.warn({ err, eventId: event.eventId, roomId: event.roomId }, 'push: event skipped after repeated failures');
      this.failing = undefined;
    }
  }

  private async handle(event: StoredEvent, upTo: number, batch: BatchTargets): Promise<void> {
    const invitee = inviteeOf(event);
    const candidates = [...(batch.byRoom.get(event.roomId) ?? []), ...(invitee !== null ? (batch.byInvitee.get(invitee) ?? []) : [])];
    const seen = new Set<string>();
    const targets = candidates.filter((t) => {
      const key = `${t.userId}\u0000${t.appId}\u0000${t.pushkey}`;
      if (seen.has(key) || t.userId === event.sender || !this.isLocal(t.userId) || typeof t.data.url !== 'string') return false;
      seen.add(key);
      return true;
    });
    if (targets.length === 0) return;
    const byUser = new Map<string, PusherTarget[]>();
    for (const t of targets) byUser.set(t.userId, [...(byUser.get(t.userId) ?? []), t]);

    let details: Promise<EventDetails> | undefined;
    for (const [userId, pushers] of byUser) {
      const evaluation = (await this.counter.evaluator(userId, event.roomId, event.streamPos!))(event.json);
      if (!evaluation.notify) continue;
      const unread = await this.unreadCount(userId, upTo);
      for (const pusher of pushers) {
        const eventIdOnly = isEventIdOnly(pusher.data);
        if (!eventIdOnly) details ??= this.eventDetails(event);
        const body = notifyRequestBody({
          event: event.json,
          eventId: event.eventId,
          roomId: event.roomId,
          actions: evaluation.actions,
          pusher,
          unread,
          details: eventIdOnly ? {} : await details!,
        });
        this.queues.enqueue({
          url: pusher.data.url as string,
          body,
          label: { userId, appId: pusher.appId, eventId: event.eventId },
          onAnswer: (answer) => this.onAnswer(pusher, answer),
        });
      }
    }
  }

  /** The user's unread notification count over all their joined rooms (the badge), as /sync counts them. */
  private async unreadCount(userId: string, upTo: number): Promise<number> {
    const rooms = (await getUserMemberships(this.db, userId, ['join'])).map((m) => m.roomId);
    let total = 0;
    for (let i = 0; i < rooms.length; i += COUNT_CONCURRENCY) {
      const tallies = await Promise.all(rooms.slice(i, i + COUNT_CONCURRENCY).map((roomId) => this.counter.counts(userId, roomId, upTo, false)));
      for (const t of tallies) total += t.total().notification_count;
    }
    return total;
  }

  /** What the full format says of the room and the sender, from the current state. */
  private async eventDetails(event: StoredEvent): Promise<EventDetails> {
    const [member, name, alias] = await Promise.all([
      getCurrentStateEvent(this.db, event.roomId, 'm.room.member', event.sender),
      getCurrentStateEvent(this.db, event.roomId, 'm.room.name', ''),
      getCurrentStateEvent(this.db, event.roomId, 'm.room.canonical_alias', ''),
    ]);
    const text = (e: StoredEvent | null, key: string) => {
      const v = (e?.json.content as Record<string, unknown> | undefined)?.[key];
      return typeof v === 'string' && v !== '' ? v : undefined;
    };
    return { senderDisplayName: text(member, 'displayname'), roomName: text(name, 'name'), roomAlias: text(alias, 'alias') };
  }

  private async onAnswer(pusher: PusherTarget, answer: GatewayAnswer): Promise<void> {
    if (!answer.rejected.includes(pusher.pushkey)) return;
    await pushersStore.delete(this.db, pusher.userId, pusher.appId, pusher.pushkey);
    this.logger.info({ userId: pusher.userId, appId: pusher.appId }, 'push: the gateway rejected a pushkey, its pusher is removed');
  }

  private isLocal(userId: string): boolean {
    return userId.slice(userId.indexOf(':') + 1) === this.config.serverName;
  }
}

type BatchTargets = Awaited<ReturnType<typeof pushTargetsForBatch>>;

/** The invited user of an invite event, else null. */
function inviteeOf(event: StoredEvent): string | null {
  const content = (event.json.content ?? {}) as Record<string, unknown>;
  return event.type === 'm.room.member' && event.stateKey !== null && content.membership === 'invite' ? event.stateKey : null;
}
