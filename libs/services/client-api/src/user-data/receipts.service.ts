import { Inject, Injectable, Optional } from '@nestjs/common';
import type { Db } from '@tessera/storage';
import { badJson, forbidden, invalidParam, notFound } from '../errors.js';
import { ROOM_MEMBERSHIP, type RoomMembership } from '../room-membership.js';
import { currentStreamPosition, nextStreamPosition } from '../storage/streams.js';
import { StreamChanges } from '../stream-changes.js';
import { CLIENT_API_DB } from '../tokens.js';
import type { JsonBody } from '../validation.js';
import { AccountDataService } from './account-data.service.js';

const RECEIPT_TYPES = ['m.read', 'm.read.private', 'm.fully_read'];

/** m.receipt content: event id -> receipt type -> user id -> { ts, thread_id? }. */
export type ReceiptContent = Record<string, Record<string, Record<string, { ts: number; thread_id?: string }>>>;

export interface ReceiptChanges {
  /** The receipts stream position these changes reach. */
  position: number;
  /** Room id to the content of one m.receipt event with that room's changed receipts. */
  rooms: Record<string, ReceiptContent>;
}

/** Read receipts and read markers (spec "Receipts", "Fully read markers"). */
@Injectable()
export class ReceiptsService {
  constructor(
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(AccountDataService) private readonly accountData: AccountDataService,
    @Inject(StreamChanges) private readonly changes: StreamChanges,
    @Optional() @Inject(ROOM_MEMBERSHIP) private readonly membership?: RoomMembership,
  ) {}

  /** POST /rooms/{roomId}/receipt/{receiptType}/{eventId}. */
  async postReceipt(userId: string, roomId: string, receiptType: string, eventId: string, body: JsonBody): Promise<void> {
    if (!RECEIPT_TYPES.includes(receiptType)) throw invalidParam(`Unknown receipt type ${receiptType}: use ${RECEIPT_TYPES.join(', ')}`);
    const threadId = body.thread_id;
    if (threadId !== undefined && (typeof threadId !== 'string' || threadId === '')) throw badJson('"thread_id" must be a non-empty string');
    if (threadId !== undefined && receiptType === 'm.fully_read') throw badJson('m.fully_read markers cannot be threaded');
    await this.checkRoomAndEvent(userId, roomId, eventId);
    if (receiptType === 'm.fully_read') {
      await this.accountData.set(userId, roomId, 'm.fully_read', { event_id: eventId });
      return;
    }
    await this.store(userId, roomId, receiptType, eventId, (threadId as string | undefined) ?? '');
  }

  /** POST /rooms/{roomId}/read_markers. */
  async postReadMarkers(userId: string, roomId: string, body: JsonBody): Promise<void> {
    const markers: Record<string, string> = {};
    for (const key of RECEIPT_TYPES) {
      const value = body[key];
      if (value === undefined || value === null) continue;
      if (typeof value !== 'string') throw badJson(`"${key}" must be an event id`);
      markers[key] = value;
    }
    for (const eventId of Object.values(markers)) await this.checkRoomAndEvent(userId, roomId, eventId);
    if (markers['m.fully_read']) await this.accountData.set(userId, roomId, 'm.fully_read', { event_id: markers['m.fully_read'] });
    if (markers['m.read']) await this.store(userId, roomId, 'm.read', markers['m.read'], '');
    if (markers['m.read.private']) await this.store(userId, roomId, 'm.read.private', markers['m.read.private'], '');
  }

  private async checkRoomAndEvent(userId: string, roomId: string, eventId: string): Promise<void> {
    if (!eventId.startsWith('$')) throw invalidParam(`"${eventId}" is not an event id`);
    // TODO(rooms): without the rooms read model (ROOM_MEMBERSHIP) membership and the event are not checked.
    if (!this.membership) return;
    if (!(await this.membership.isJoined(roomId, userId))) throw forbidden('You are not in this room');
    if (this.membership.eventInRoom && !(await this.membership.eventInRoom(roomId, eventId))) throw notFound(`No event ${eventId} in this room`);
  }

  /**
   * Sends public receipts of local users on (m.receipt EDUs); set by the EDU bridge. Private
   * receipts never leave the server.
   */
  outbound?: (userId: string, roomId: string, eventId: string, ts: number, threadId: string) => Promise<void>;

  /** Stores a receipt without checks: for m.receipt EDUs, which the EDU bridge has checked. */
  async storeRemote(userId: string, roomId: string, eventId: string, ts: number, threadId: string): Promise<void> {
    await this.store(userId, roomId, 'm.read', eventId, threadId, ts);
  }

  private async store(userId: string, roomId: string, receiptType: string, eventId: string, threadId: string, ts = Date.now()): Promise<void> {
    const position = await this.db.transaction(async (tx) => {
      const position = await nextStreamPosition(tx, 'receipts');
      await tx.query(
        `INSERT INTO receipts (room_id, receipt_type, user_id, thread_id, event_id, ts, stream_position) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (room_id, receipt_type, user_id, thread_id) DO UPDATE SET event_id = $5, ts = $6, stream_position = $7`,
        [roomId, receiptType, userId, threadId, eventId, ts, position],
      );
      return position;
    });
    this.changes.emit({ stream: 'receipts', position, roomId, userId });
    if (receiptType === 'm.read' && this.outbound) await this.outbound(userId, roomId, eventId, ts, threadId);
  }

  async currentPosition(): Promise<number> {
    return currentStreamPosition(this.db, 'receipts');
  }

  /**
   * For /sync: receipts in these rooms changed after `since` (0: all current receipts), as
   * seen by `viewerId` (others' m.read.private receipts are left out).
   */
  async getReceiptsSince(roomIds: string[], since: number, viewerId: string): Promise<ReceiptChanges> {
    const position = await this.currentPosition();
    const result: ReceiptChanges = { position, rooms: {} };
    if (roomIds.length === 0) return result;
    const { rows } = await this.db.query<{ room_id: string; receipt_type: string; user_id: string; thread_id: string; event_id: string; ts: number }>(
      `SELECT room_id, receipt_type, user_id, thread_id, event_id, ts FROM receipts
       WHERE room_id = ANY($1) AND stream_position > $2 AND stream_position <= $3
         AND (receipt_type <> 'm.read.private' OR user_id = $4)
       ORDER BY stream_position`,
      [roomIds, since, position, viewerId],
    );
    for (const row of rows) {
      const room = (result.rooms[row.room_id] ??= {});
      const receipt: { ts: number; thread_id?: string } = { ts: row.ts };
      if (row.thread_id !== '') receipt.thread_id = row.thread_id;
      const users = ((room[row.event_id] ??= {})[row.receipt_type] ??= {});
      // MSC4102 (as Synapse): a user's threaded and unthreaded receipts on one event cannot both
      // be told in this shape; the unthreaded one wins, whichever came last.
      const told = users[row.user_id];
      if (told && told.thread_id === undefined && receipt.thread_id !== undefined) continue;
      users[row.user_id] = receipt;
    }
    return result;
  }
}
