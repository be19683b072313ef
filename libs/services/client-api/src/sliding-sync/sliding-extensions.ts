import { Inject, Injectable } from '@nestjs/common';
import { DB } from '@tessera/http';
import { getRoomMembers, type Db, type UserMembership } from '@tessera/storage';
import { KeysService } from '../e2ee/keys.service.js';
import { ToDeviceService } from '../e2ee/to-device.service.js';
import { TypingService } from '../ephemeral/typing.service.js';
import type { SyncPositions } from '../sync-token.js';
import { usersNoLongerSharing } from '../sync/device-lists-left.js';
import { SyncNotifier } from '../sync/sync-notifier.js';
import { AccountDataService, type AccountDataChanges } from '../user-data/account-data.service.js';
import { ReceiptsService } from '../user-data/receipts.service.js';
import type { ExtensionScope, SlidingSyncExtensions } from './sliding-sync-request.js';

type Json = Record<string, unknown>;

/** The rooms a response covers, for the room-scoped extensions. */
export interface CoveredRooms {
  /** List name -> the rooms of the list within its ranges. */
  lists: ReadonlyMap<string, readonly string[]>;
  /** Subscribed rooms the user may see. */
  subscriptions: readonly string[];
  /** Rooms this response sends in full for the first time: they get their data from the start, not only what changed since pos. */
  initial: ReadonlySet<string>;
}

export interface ExtensionsPass {
  userId: string;
  deviceId: string;
  config: SlidingSyncExtensions;
  since?: SyncPositions;
  /** The response's positions, at first those the notifier knows: a store is read only when its stream moved past `since`; streams read are set to what their store reached. */
  upTo: SyncPositions;
  memberships: readonly UserMembership[];
  joined: readonly string[];
  covered: CoveredRooms;
}

/**
 * The extensions of a sliding sync response (MSC3885 to_device, MSC3884 e2ee, MSC3959
 * account_data, MSC3960 receipts, MSC3961 typing), from the same stores as /sync.
 */
@Injectable()
export class SlidingSyncExtensionsBuilder {
  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(SyncNotifier) private readonly notifier: SyncNotifier,
    @Inject(AccountDataService) private readonly accountData: AccountDataService,
    @Inject(ToDeviceService) private readonly toDevice: ToDeviceService,
    @Inject(KeysService) private readonly keys: KeysService,
    @Inject(ReceiptsService) private readonly receipts: ReceiptsService,
    @Inject(TypingService) private readonly typing: TypingService,
  ) {}

  /** The extensions section, and whether it carries anything new (for the long poll). */
  async build(pass: ExtensionsPass): Promise<{ extensions: Json; hasNews: boolean }> {
    const { config } = pass;
    const extensions: Json = {};
    let hasNews = false;
    const note = (name: string, value: Json | undefined, news: boolean) => {
      if (value === undefined) return;
      extensions[name] = value;
      hasNews ||= news;
    };
    const [toDevice, e2ee, accountData, receipts, typing] = await Promise.all([
      config.toDevice ? this.toDeviceSection(pass, config.toDevice) : undefined,
      config.e2ee ? this.e2eeSection(pass) : undefined,
      config.accountData ? this.accountDataSection(pass, config.accountData) : undefined,
      config.receipts ? this.receiptsSection(pass, config.receipts) : undefined,
      config.typing ? this.typingSection(pass, config.typing) : undefined,
    ]);
    note('to_device', toDevice?.value, toDevice?.news ?? false);
    note('e2ee', e2ee?.value, e2ee?.news ?? false);
    note('account_data', accountData?.value, accountData?.news ?? false);
    note('receipts', receipts?.value, receipts?.news ?? false);
    note('typing', typing?.value, typing?.news ?? false);
    return { extensions, hasNews };
  }

  /**
   * To-device messages after the extension's own `since` (its last next_batch): sending it
   * acknowledges, and deletes, the messages up to it (as /sync's token does).
   */
  private async toDeviceSection(pass: ExtensionsPass, config: { since?: number; limit: number }): Promise<{ value: Json; news: boolean }> {
    // Nothing after `since` as far as the notifier knows: no read (the acknowledged messages go with the next one).
    if (config.since !== undefined && pass.upTo.to_device <= config.since) return { value: { next_batch: String(config.since), events: [] }, news: false };
    const batch = await this.toDevice.getToDeviceSince(pass.userId, pass.deviceId, config.since ?? 0, config.limit);
    pass.upTo.to_device = Math.max(pass.upTo.to_device, batch.position);
    return { value: { next_batch: String(batch.position), events: batch.events }, news: batch.events.length > 0 };
  }

  private async e2eeSection(pass: ExtensionsPass): Promise<{ value: Json; news: boolean }> {
    const { userId, since, upTo } = pass;
    const counts = await this.keys.keyCountsForSync(userId, pass.deviceId);
    const value: Json = { device_one_time_keys_count: counts.oneTimeKeys, device_unused_fallback_key_types: counts.unusedFallbackTypes };
    if (!since) return { value, news: false };
    const changed = new Set<string>();
    if (upTo.device_lists > since.device_lists) {
      const changes = await this.keys.getDeviceListChangesSince(userId, since.device_lists);
      upTo.device_lists = changes.position;
      for (const u of changes.changed) changed.add(u);
    }
    // Members of rooms joined since pos are new to track; those no longer sharing a room are left.
    for (const m of pass.memberships) {
      if (m.membership !== 'join' || m.streamPos <= since.events || m.streamPos > upTo.events) continue;
      for (const u of await getRoomMembers(this.db, m.roomId, 'join')) if (u !== userId) changed.add(u);
    }
    const sharing = await usersNoLongerSharing(this.db, this.notifier.recent, userId, pass.memberships, pass.joined, since.events, upTo.events);
    for (const u of sharing.joined) changed.add(u);
    if (changed.size === 0 && sharing.left.length === 0) return { value, news: false };
    value.device_lists = { changed: [...changed].sort(), left: sharing.left };
    return { value, news: true };
  }

  private async accountDataSection(pass: ExtensionsPass, scope: ExtensionScope): Promise<{ value: Json; news: boolean }> {
    const { userId, since, upTo } = pass;
    const rooms = scopedRooms(pass.covered, scope);
    const changes: AccountDataChanges =
      !since || upTo.account_data > since.account_data ? await this.accountData.getAccountDataSince(userId, since?.account_data ?? 0) : { position: since.account_data, global: [], rooms: {} };
    upTo.account_data = changes.position;
    const byRoom: Json = {};
    for (const roomId of rooms) if (changes.rooms[roomId]?.length) byRoom[roomId] = changes.rooms[roomId];
    // Rooms sent for the first time on an incremental request get all their account data (tags, fully read markers).
    const firstSeen = since ? [...rooms].filter((r) => pass.covered.initial.has(r) && !byRoom[r]) : [];
    if (firstSeen.length > 0) {
      const all = await this.accountData.getAccountDataSince(userId, 0);
      for (const roomId of firstSeen) if (all.rooms[roomId]?.length) byRoom[roomId] = all.rooms[roomId];
    }
    const news = changes.global.length > 0 || Object.keys(byRoom).length > 0;
    return { value: { global: changes.global, rooms: byRoom }, news };
  }

  private async receiptsSection(pass: ExtensionsPass, scope: ExtensionScope): Promise<{ value: Json; news: boolean }> {
    const { userId, since, upTo } = pass;
    const rooms = [...scopedRooms(pass.covered, scope)].filter((r) => pass.joined.includes(r));
    const changes = !since || upTo.receipts > since.receipts ? await this.receipts.getReceiptsSince(rooms, since?.receipts ?? 0, userId) : { position: since.receipts, rooms: {} };
    upTo.receipts = changes.position;
    const out: Json = {};
    for (const [roomId, content] of Object.entries(changes.rooms)) out[roomId] = { type: 'm.receipt', content };
    const firstSeen = since ? rooms.filter((r) => pass.covered.initial.has(r) && !out[r]) : [];
    if (firstSeen.length > 0) {
      const all = await this.receipts.getReceiptsSince(firstSeen, 0, userId);
      for (const [roomId, content] of Object.entries(all.rooms)) out[roomId] = { type: 'm.receipt', content };
    }
    return { value: { rooms: out }, news: Object.keys(out).length > 0 };
  }

  private async typingSection(pass: ExtensionsPass, scope: ExtensionScope): Promise<{ value: Json; news: boolean }> {
    const { since, upTo } = pass;
    const rooms = [...scopedRooms(pass.covered, scope)].filter((r) => pass.joined.includes(r));
    const changes = !since || upTo.typing > since.typing ? await this.typing.getTypingSince(rooms, since?.typing ?? 0) : { position: since.typing, rooms: {} as Record<string, string[]> };
    upTo.typing = changes.position;
    const out: Json = {};
    for (const [roomId, userIds] of Object.entries(changes.rooms)) {
      // On a first request, rooms where nobody types say nothing.
      if (!since && userIds.length === 0) continue;
      out[roomId] = { type: 'm.typing', content: { user_ids: userIds } };
    }
    return { value: { rooms: out }, news: Object.keys(out).length > 0 };
  }
}

/**
 * The rooms an extension covers: those of the named lists and subscriptions (`*` for all of
 * either); without `lists` and `rooms`, every room of the response's lists and subscriptions.
 */
export function scopedRooms(covered: Pick<CoveredRooms, 'lists' | 'subscriptions'>, scope: ExtensionScope): Set<string> {
  const out = new Set<string>();
  const all = scope.lists === undefined && scope.rooms === undefined;
  for (const [name, rooms] of covered.lists) {
    if (all || scope.lists?.includes('*') || scope.lists?.includes(name)) for (const r of rooms) out.add(r);
  }
  for (const r of covered.subscriptions) if (all || scope.rooms?.includes('*') || scope.rooms?.includes(r)) out.add(r);
  return out;
}
