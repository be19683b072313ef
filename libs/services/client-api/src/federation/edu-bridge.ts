import { Inject, Injectable, Optional, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { publishOn, subscribeOn, Subjects, type BusTransport, type InboundEdu, type OutboundEdu, type Subscription } from '@tessera/bus';
import { BUS, LOGGER } from '@tessera/http';
import type { Logger } from 'pino';
import { randomToken } from '../auth/token-hash.js';
import { ToDeviceService } from '../e2ee/to-device.service.js';
import { PresenceService } from '../ephemeral/presence.service.js';
import { TypingService } from '../ephemeral/typing.service.js';
import { ROOM_MEMBERSHIP, type RoomMembership } from '../room-membership.js';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { ReceiptsService } from '../user-data/receipts.service.js';
import { isPlainObject, isRoomId, isUserId, serverNameOf } from '../validation.js';
import { DEVICE_LIST_UPDATE, SIGNING_KEY_UPDATE } from './device-list-edus.js';
import { DeviceListUpdates } from './device-list-updates.js';

/** How long a remote user's typing lasts without news (as Synapse's federation timeout). */
const REMOTE_TYPING_MS = 60_000;
/** Queue group: each inbound EDU is handled by one client-api replica (the stores are shared). */
const QUEUE = 'client-api';

/**
 * Ephemeral data across servers (DESIGN, "path of an event" 7): local typing, public receipts,
 * presence and to-device messages for remote users go out on edu.outbound for fanout-sender; EDUs that
 * federation-ingress received come in on edu.inbound and land in the same stores as local
 * ones, so /sync reports them alike. A server may speak only for its own users: an EDU naming
 * another server's user is dropped (spec, Server-Server API "EDUs"). Device list EDUs
 * (m.device_list_update, m.signing_key_update) go both ways through DeviceListUpdates.
 */
@Injectable()
export class EduBridge implements OnModuleInit, OnModuleDestroy {
  private subscription?: Subscription;

  constructor(
    @Inject(BUS) private readonly bus: BusTransport,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
    @Inject(TypingService) private readonly typing: TypingService,
    @Inject(ReceiptsService) private readonly receipts: ReceiptsService,
    @Inject(ToDeviceService) private readonly toDevice: ToDeviceService,
    @Inject(PresenceService) private readonly presence: PresenceService,
    @Inject(DeviceListUpdates) private readonly deviceLists: DeviceListUpdates,
    @Optional() @Inject(ROOM_MEMBERSHIP) private readonly membership?: RoomMembership,
  ) {}

  async onModuleInit(): Promise<void> {
    this.typing.outbound = (roomId, userId, typing) => this.send({ eduType: 'm.typing', content: { room_id: roomId, user_id: userId, typing }, to: { roomId } });
    this.receipts.outbound = (userId, roomId, eventId, ts, threadId) =>
      this.send({
        eduType: 'm.receipt',
        content: { [roomId]: { 'm.read': { [userId]: { event_ids: [eventId], data: threadId === '' ? { ts } : { ts, thread_id: threadId } } } } },
        to: { roomId },
      });
    this.toDevice.outbound = async (sender, eventType, txnId, deliveries) => {
      const byServer = new Map<string, Record<string, Record<string, unknown>>>();
      for (const [userId, deviceId, content] of deliveries) {
        const messages = byServer.get(serverNameOf(userId)) ?? {};
        (messages[userId] ??= {} as Record<string, unknown>);
        (messages[userId] as Record<string, unknown>)[deviceId] = content;
        byServer.set(serverNameOf(userId), messages);
      }
      for (const [server, messages] of byServer) {
        // message_id lets the receiver drop a repeated delivery; unique per sender and transaction.
        const content = { sender, type: eventType, message_id: `${txnId}-${randomToken(6)}`, messages };
        await this.send({ eduType: 'm.direct_to_device', content, to: { destinations: [server] } });
      }
    };
    this.presence.outbound = async (userId) => {
      // Presence goes to every server sharing a room with the user (spec: Server-Server "Presence").
      const sharing = (await this.membership?.usersSharingRoomsWith?.(userId)) ?? [];
      const destinations = [...new Set(sharing.map(serverNameOf))].filter((server) => server !== this.settings.serverName).sort();
      if (destinations.length === 0) return;
      const push = [{ user_id: userId, ...(await this.presence.current(userId)) }];
      await this.send({ eduType: 'm.presence', content: { push }, to: { destinations } });
    };
    this.subscription = await subscribeOn(this.bus, Subjects.eduInbound, (edu) => this.receive(edu), { queue: QUEUE });
  }

  async onModuleDestroy(): Promise<void> {
    await this.subscription?.unsubscribe();
  }

  private async send(edu: OutboundEdu): Promise<void> {
    // Losing an EDU costs a stale indicator, never data: a failed publish must not fail the request.
    await publishOn(this.bus, Subjects.eduOutbound, edu).catch((err: unknown) => this.logger.warn({ err, eduType: edu.eduType }, 'edu.outbound: publish failed'));
  }

  /** Handles one inbound EDU; never throws (a bad EDU is logged and dropped). */
  async receive(edu: InboundEdu): Promise<void> {
    try {
      if (!isPlainObject(edu?.content) || typeof edu.origin !== 'string') return;
      if (edu.eduType === 'm.typing') await this.receiveTyping(edu);
      else if (edu.eduType === 'm.receipt') await this.receiveReceipts(edu);
      else if (edu.eduType === 'm.direct_to_device') await this.receiveToDevice(edu);
      else if (edu.eduType === 'm.presence') await this.receivePresence(edu);
      else if (edu.eduType === DEVICE_LIST_UPDATE || edu.eduType === SIGNING_KEY_UPDATE) await this.deviceLists.receive(edu);
    } catch (err) {
      this.logger.warn({ err, origin: edu.origin, eduType: edu.eduType }, 'edu.inbound: dropped');
    }
  }

  private ownedBy(userId: unknown, origin: string): userId is string {
    return isUserId(userId) && serverNameOf(userId) === origin && origin !== this.settings.serverName;
  }

  private async receiveTyping({ origin, content }: InboundEdu): Promise<void> {
    const { room_id: roomId, user_id: userId, typing } = content;
    if (!isRoomId(roomId) || !this.ownedBy(userId, origin) || typeof typing !== 'boolean') return;
    if (this.membership && !(await this.membership.isJoined(roomId, userId))) return;
    await this.typing.record(roomId, userId, typing ? REMOTE_TYPING_MS : 0);
  }

  private async receiveReceipts({ origin, content }: InboundEdu): Promise<void> {
    for (const [roomId, byType] of Object.entries(content)) {
      if (!isRoomId(roomId) || !isPlainObject(byType) || !isPlainObject(byType['m.read'])) continue;
      for (const [userId, receipt] of Object.entries(byType['m.read'])) {
        if (!this.ownedBy(userId, origin) || !isPlainObject(receipt) || !Array.isArray(receipt.event_ids)) continue;
        const eventId = receipt.event_ids.find((id): id is string => typeof id === 'string' && id.startsWith('$'));
        if (!eventId) continue;
        if (this.membership && !(await this.membership.isJoined(roomId, userId))) continue;
        const data = isPlainObject(receipt.data) ? receipt.data : {};
        const ts = typeof data.ts === 'number' && Number.isSafeInteger(data.ts) ? data.ts : Date.now();
        const threadId = typeof data.thread_id === 'string' ? data.thread_id : '';
        await this.receipts.storeRemote(userId, roomId, eventId, ts, threadId);
      }
    }
  }

  private async receivePresence({ origin, content, receivedTs }: InboundEdu): Promise<void> {
    if (!Array.isArray(content.push)) return;
    for (const update of content.push) {
      if (!isPlainObject(update) || !this.ownedBy(update.user_id, origin)) continue;
      if (update.presence !== 'online' && update.presence !== 'offline' && update.presence !== 'unavailable') continue;
      const ago = typeof update.last_active_ago === 'number' && update.last_active_ago >= 0 ? update.last_active_ago : 0;
      const statusMsg = typeof update.status_msg === 'string' ? update.status_msg : undefined;
      await this.presence.record(update.user_id, update.presence, statusMsg, (receivedTs ?? Date.now()) - ago);
    }
  }

  private async receiveToDevice({ origin, content }: InboundEdu): Promise<void> {
    const { sender, type, message_id: messageId, messages } = content;
    if (!this.ownedBy(sender, origin) || typeof type !== 'string' || typeof messageId !== 'string' || !isPlainObject(messages)) return;
    const deliveries: [string, string, Record<string, unknown>][] = [];
    for (const [userId, devices] of Object.entries(messages)) {
      // Only this server's users: a server cannot relay to a third one through us.
      if (!isUserId(userId) || serverNameOf(userId) !== this.settings.serverName || !isPlainObject(devices)) continue;
      for (const [deviceId, message] of Object.entries(devices)) if (isPlainObject(message)) deliveries.push([userId, deviceId, message]);
    }
    // The sender's server and message_id identify the delivery; a repeat is dropped.
    await this.toDevice.deliverLocally(sender, `federation:${origin}`, messageId, type, deliveries);
  }
}
