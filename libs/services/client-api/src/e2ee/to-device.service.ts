import { Inject, Injectable } from '@nestjs/common';
import type { Db } from '@tessera/storage';
import type { Requester } from '../auth/access-tokens.service.js';
import { badJson, missingParam } from '../errors.js';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { currentStreamPosition, nextStreamPosition } from '../storage/streams.js';
import { StreamChanges } from '../stream-changes.js';
import { CLIENT_API_DB } from '../tokens.js';
import { isPlainObject, serverNameOf, type JsonBody } from '../validation.js';

export interface ToDeviceEvent {
  type: string;
  sender: string;
  content: Record<string, unknown>;
}

export interface ToDeviceBatch {
  /** The to_device position to put in the next sync token. */
  position: number;
  events: ToDeviceEvent[];
}

/** Send-to-device messaging: a per-device inbox on the to_device stream. */
@Injectable()
export class ToDeviceService {
  constructor(
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
    @Inject(StreamChanges) private readonly changes: StreamChanges,
  ) {}

  /** PUT /sendToDevice/{eventType}/{txnId}: idempotent per (user, device, txnId). */
  async send(requester: Requester, eventType: string, txnId: string, body: JsonBody): Promise<void> {
    const messages = body.messages;
    if (messages === undefined) throw missingParam('missing "messages"');
    if (!isPlainObject(messages)) throw badJson('"messages" must be a JSON object');
    const deliveries: [string, string, Record<string, unknown>][] = [];
    for (const [userId, devices] of Object.entries(messages)) {
      if (!isPlainObject(devices)) throw badJson(`messages.${userId} must map device ids to message contents`);
      for (const [deviceId, content] of Object.entries(devices)) {
        if (!isPlainObject(content)) throw badJson(`messages.${userId}.${deviceId} must be a JSON object`);
        deliveries.push([userId, deviceId, content]);
      }
    }

    const local = deliveries.filter(([userId]) => serverNameOf(userId) === this.settings.serverName);
    const remote = deliveries.filter(([userId]) => serverNameOf(userId) !== this.settings.serverName);
    const delivered = await this.deliverLocally(requester.userId, requester.deviceId, txnId, eventType, local);
    // A retried request (same txnId) was already handed on, remote part included.
    if (delivered && remote.length > 0) await this.outbound?.(requester.userId, eventType, txnId, remote);
  }

  /**
   * Sends remote users' messages on (m.direct_to_device EDUs); set by the EDU bridge. Absent,
   * remote recipients are skipped.
   */
  outbound?: (sender: string, eventType: string, txnId: string, deliveries: [string, string, Record<string, unknown>][]) => Promise<void>;

  /**
   * Puts messages in local devices' inboxes once per (sender, sender device, txnId): a repeated
   * transaction delivers nothing and returns false. `deviceId` '*' means every device of the
   * user. Used for this server's senders and for m.direct_to_device EDUs from other servers.
   */
  async deliverLocally(sender: string, senderDevice: string, txnId: string, eventType: string, deliveries: [string, string, Record<string, unknown>][]): Promise<boolean> {
    const delivered = await this.db.transaction(async (tx) => {
      const { rowCount } = await tx.query(
        'INSERT INTO to_device_txns (user_id, device_id, txn_id, created_ts) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING',
        [sender, senderDevice, txnId, Date.now()],
      );
      if (rowCount === 0) return undefined; // A retry of a request already handled.
      const position = await nextStreamPosition(tx, 'to_device');
      const byUser = new Map<string, Set<string>>();
      for (const [userId, deviceId, content] of deliveries) {
        const targets =
          deviceId === '*'
            ? (await tx.query<{ device_id: string }>('SELECT device_id FROM devices WHERE user_id = $1', [userId])).rows.map((r) => r.device_id)
            : [deviceId];
        for (const target of targets) {
          await tx.query(
            'INSERT INTO to_device_inbox (stream_position, user_id, device_id, sender, type, content) VALUES ($1, $2, $3, $4, $5, $6)',
            [position, userId, target, sender, eventType, JSON.stringify(content)],
          );
          if (!byUser.has(userId)) byUser.set(userId, new Set());
          byUser.get(userId)!.add(target);
        }
      }
      return { position, byUser };
    });
    if (!delivered) return false;
    for (const [userId, devices] of delivered.byUser) {
      this.changes.emit({ stream: 'to_device', position: delivered.position, userId, deviceIds: [...devices] });
    }
    return true;
  }

  async currentPosition(): Promise<number> {
    return currentStreamPosition(this.db, 'to_device');
  }

  /**
   * For /sync: the device's messages after `since`, oldest first, at most about `limit`.
   * Messages at or below `since` were delivered in an earlier response the client has now
   * acknowledged by sending this token: they are deleted here.
   */
  async getToDeviceSince(userId: string, deviceId: string, since: number, limit = 100): Promise<ToDeviceBatch> {
    await this.db.query('DELETE FROM to_device_inbox WHERE user_id = $1 AND device_id = $2 AND stream_position <= $3', [userId, deviceId, since]);
    const current = await this.currentPosition();
    const { rows } = await this.db.query<{ stream_position: number; sender: string; type: string; content: Record<string, unknown> }>(
      `SELECT stream_position, sender, type, content FROM to_device_inbox
       WHERE user_id = $1 AND device_id = $2 AND stream_position > $3 AND stream_position <= $4
       ORDER BY stream_position, id LIMIT $5`,
      [userId, deviceId, since, current, limit + 1],
    );
    if (rows.length <= limit) return { position: current, events: rows.map(toEvent) };
    // More than a batch: stop at a position boundary, so the token never splits one position.
    const last = rows[limit - 1].stream_position;
    const cut = rows.filter((r) => r.stream_position < last);
    const batch = cut.length > 0 ? cut : rows.filter((r) => r.stream_position === last);
    const position = cut.length > 0 ? cut[cut.length - 1].stream_position : last;
    if (cut.length === 0) {
      // One position holds more than `limit` messages: deliver all of it.
      const { rows: all } = await this.db.query<{ stream_position: number; sender: string; type: string; content: Record<string, unknown> }>(
        'SELECT stream_position, sender, type, content FROM to_device_inbox WHERE user_id = $1 AND device_id = $2 AND stream_position = $3 ORDER BY id',
        [userId, deviceId, last],
      );
      return { position, events: all.map(toEvent) };
    }
    return { position, events: batch.map(toEvent) };
  }
}

function toEvent(row: { sender: string; type: string; content: Record<string, unknown> }): ToDeviceEvent {
  return { type: row.type, sender: row.sender, content: row.content };
}
