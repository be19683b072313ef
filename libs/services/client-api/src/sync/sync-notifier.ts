import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { subscribeOn, Subjects, type BusTransport, type StreamEventNotification, type Subscription } from '@tessera/bus';
import { BUS, DB } from '@tessera/http';
import { getCurrentStreamPosition, getUsersSharingRooms, type Db } from '@tessera/storage';
import { KeysService } from '../e2ee/keys.service.js';
import { ToDeviceService } from '../e2ee/to-device.service.js';
import { PresenceService } from '../ephemeral/presence.service.js';
import { TypingService } from '../ephemeral/typing.service.js';
import { StreamChanges, type StreamChange } from '../stream-changes.js';
import { SYNC_STREAMS, type SyncPositions, type SyncStream } from '../sync-token.js';
import { AccountDataService } from '../user-data/account-data.service.js';
import { ReceiptsService } from '../user-data/receipts.service.js';
import { RecentTimeline } from './recent-timeline.js';
import { UnreadCounts } from './unread-counts.js';

/** A long-polling /sync: woken by anything about its user or one of its rooms. */
interface Waiter {
  userId: string;
  rooms: readonly string[];
  wake: () => void;
}

/**
 * Wakes waiting /sync requests of this process (DESIGN "The path of an event", step 5).
 *
 * Driven by notifications only, never by polling the database: stream.events from
 * persistence (wakes the room's waiting members, and the user whose membership changed) and
 * client-api's own StreamChanges (account data, to-device, device lists, receipts, typing,
 * presence). Waiters are indexed by user and by the rooms their sync found them joined to,
 * which is the room membership cache: a notification for a room reaches exactly the
 * requests that would report it.
 *
 * It also keeps the latest position it has heard of per stream, so a sync can skip asking a
 * store that has nothing new (the store is still the source of truth; see SyncService), and
 * the recent stream itself (RecentTimeline) and unread counts, so that a woken /sync answers
 * from memory.
 */
@Injectable()
export class SyncNotifier implements OnModuleInit, OnModuleDestroy {
  private readonly byUser = new Map<string, Set<Waiter>>();
  private readonly byRoom = new Map<string, Set<Waiter>>();
  private readonly known: SyncPositions = Object.fromEntries(SYNC_STREAMS.map((s) => [s, 0])) as SyncPositions;
  private subscription: Subscription | undefined;
  private stopListening: (() => void) | undefined;
  readonly recent: RecentTimeline;
  readonly unread = new UnreadCounts();

  constructor(
    @Inject(BUS) private readonly bus: BusTransport,
    @Inject(DB) private readonly db: Db,
    @Inject(StreamChanges) private readonly changes: StreamChanges,
    @Inject(AccountDataService) private readonly accountData: AccountDataService,
    @Inject(ToDeviceService) private readonly toDevice: ToDeviceService,
    @Inject(KeysService) private readonly keys: KeysService,
    @Inject(ReceiptsService) private readonly receipts: ReceiptsService,
    @Inject(TypingService) private readonly typing: TypingService,
    @Inject(PresenceService) private readonly presence: PresenceService,
  ) {
    this.recent = new RecentTimeline(db);
  }

  async onModuleInit(): Promise<void> {
    this.stopListening = this.changes.listen((change) => this.onStreamChange(change));
    // The copy of the stream starts before listening: a notification in between is a gap it heals.
    this.recent.start(await getCurrentStreamPosition(this.db));
    this.subscription = await subscribeOn(this.bus, Subjects.streamEvents, (n) => this.onEvent(n));
    await this.refreshKnown();
  }

  async onModuleDestroy(): Promise<void> {
    this.recent.stop();
    this.stopListening?.();
    await this.subscription?.unsubscribe();
    // Let waiting requests answer now rather than hold the shutdown.
    for (const set of this.byUser.values()) for (const w of [...set]) w.wake();
  }

  /** Reads every stream's position from its store (on start, and when a token is ahead of us). */
  async refreshKnown(): Promise<void> {
    const [events, accountData, toDevice, deviceLists, receipts, typing, presence] = await Promise.all([
      getCurrentStreamPosition(this.db),
      this.accountData.currentPosition(),
      this.toDevice.currentPosition(),
      this.keys.getDeviceListChangesSince('', Number.MAX_SAFE_INTEGER).then((c) => c.position),
      this.receipts.currentPosition(),
      this.typing.currentPosition(),
      this.presence.currentPosition(),
    ]);
    const fresh: SyncPositions = { events, account_data: accountData, to_device: toDevice, device_lists: deviceLists, receipts, typing, presence };
    for (const s of SYNC_STREAMS) this.known[s] = Math.max(this.known[s], fresh[s]);
  }

  /** The latest position heard of, per stream. */
  positions(): SyncPositions {
    return { ...this.known };
  }

  /** Raises a stream's known position (a sync read a newer one from the store). */
  observe(stream: SyncStream, position: number): void {
    if (position > this.known[stream]) this.known[stream] = position;
  }

  /**
   * Waits until something for this user or these rooms happens, or the timeout. Register
   * before checking for news, then check: a notification between the two is not lost.
   */
  waitFor(userId: string, rooms: readonly string[], timeoutMs: number): { promise: Promise<boolean>; cancel: () => void } {
    let resolveFn!: (woken: boolean) => void;
    const promise = new Promise<boolean>((resolve) => (resolveFn = resolve));
    let done = false;
    const finish = (woken: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      this.remove(waiter);
      resolveFn(woken);
    };
    const waiter: Waiter = { userId, rooms, wake: () => finish(true) };
    const timer = setTimeout(() => finish(false), Math.max(0, timeoutMs));
    this.add(this.byUser, userId, waiter);
    for (const room of rooms) this.add(this.byRoom, room, waiter);
    return { promise, cancel: () => finish(false) };
  }

  /** How many requests are waiting (tests, metrics). */
  waitingCount(): number {
    let n = 0;
    for (const set of this.byUser.values()) n += set.size;
    return n;
  }

  private add(index: Map<string, Set<Waiter>>, key: string, waiter: Waiter): void {
    let set = index.get(key);
    if (!set) index.set(key, (set = new Set()));
    set.add(waiter);
  }

  private remove(waiter: Waiter): void {
    const drop = (index: Map<string, Set<Waiter>>, key: string) => {
      const set = index.get(key);
      if (!set) return;
      set.delete(waiter);
      if (set.size === 0) index.delete(key);
    };
    drop(this.byUser, waiter.userId);
    for (const room of waiter.rooms) drop(this.byRoom, room);
  }

  private wakeUser(userId: string): void {
    const set = this.byUser.get(userId);
    if (set) for (const w of [...set]) w.wake();
  }

  private wakeRoom(roomId: string): void {
    const set = this.byRoom.get(roomId);
    if (set) for (const w of [...set]) w.wake();
  }

  onEvent(n: StreamEventNotification): void {
    this.recent.add(n);
    this.observe('events', n.position);
    this.wakeRoom(n.roomId);
    if (n.membership) this.wakeUser(n.membership.userId);
  }

  private onStreamChange(change: StreamChange): void {
    this.observe(change.stream, change.position);
    switch (change.stream) {
      case 'account_data':
      case 'to_device':
        this.wakeUser(change.userId);
        break;
      case 'receipts':
        this.unread.forget(change.roomId, change.userId);
        this.wakeRoom(change.roomId);
        break;
      case 'typing':
        this.wakeRoom(change.roomId);
        break;
      case 'device_lists':
      case 'presence':
        // Everyone sharing a room with the user hears of it (and the user's own other devices).
        this.wakeUser(change.userId);
        if (this.byUser.size > 0) {
          void getUsersSharingRooms(this.db, change.userId)
            .then((users) => users.forEach((u) => this.wakeUser(u)))
            .catch(() => undefined);
        }
        break;
    }
  }
}
