import { Inject, Injectable, Optional } from '@nestjs/common';
import { publishOn, Subjects, type BusTransport, type InboundEdu } from '@tessera/bus';
import { BUS, LOGGER } from '@tessera/http';
import type { Db } from '@tessera/storage';
import type { Logger } from 'pino';
import { ROOM_MEMBERSHIP, type RoomMembership } from '../room-membership.js';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { recordDeviceListChange } from '../storage/accounts-store.js';
import { StreamChanges } from '../stream-changes.js';
import { CLIENT_API_DB } from '../tokens.js';
import { serverNameOf } from '../validation.js';
import {
  DEVICE_LIST_UPDATE, deviceListUpdateContents, readDeviceListEdu, SIGNING_KEY_UPDATE, signingKeyUpdateContent, type DeviceNow,
} from './device-list-edus.js';

type Json = Record<string, unknown>;

/**
 * Device list changes across servers, so that end-to-end encryption keeps working when
 * devices come and go (spec, Server-Server API "Device Management", "End-to-End Encryption").
 *
 * Out: after a local user's device list change commits, every other server sharing a room
 * with them gets an m.device_list_update per changed device (stream_id = the change's
 * device_lists position, prev_id = the user's change before it, so the chain is the one GET
 * /user/devices answers with and a receiver that missed one resyncs) or, for cross-signing
 * keys, an m.signing_key_update; through edu.outbound, as the other EDUs.
 *
 * In: such an EDU about a user of its sender becomes a row of device_list_changes, the rows
 * /sync's device_lists.changed and /keys/changes read for local users, and wakes the /syncs of
 * those sharing a room with them. Nothing of the remote device list is kept: keys/query asks
 * the user's server live, so a missed EDU costs nothing a re-query does not heal.
 */
@Injectable()
export class DeviceListUpdates {
  constructor(
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(BUS) private readonly bus: BusTransport,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
    @Inject(StreamChanges) private readonly changes: StreamChanges,
    @Optional() @Inject(ROOM_MEMBERSHIP) private readonly membership?: RoomMembership,
  ) {}

  /**
   * Call after the commit of a user's device list changes (the positions recordDeviceListChange
   * gave): wakes the /syncs that report them and tells the other servers. Never throws: the
   * change is stored, and a lost EDU is a gap the receiver detects.
   */
  async changed(userId: string, positions: readonly number[]): Promise<void> {
    if (positions.length === 0) return;
    this.changes.emit({ stream: 'device_lists', position: Math.max(...positions), userId });
    if (serverNameOf(userId) !== this.settings.serverName) return;
    try {
      await this.announce(userId, positions);
    } catch (err) {
      this.logger.warn({ err, userId }, 'device list update: not sent to other servers');
    }
  }

  private async announce(userId: string, positions: readonly number[]): Promise<void> {
    const destinations = [...new Set((await this.usersSharingRoomsWith(userId)).map(serverNameOf))].filter((s) => s !== this.settings.serverName).sort();
    if (destinations.length === 0) return;
    const { rows } = await this.db.query<{ stream_position: number; device_id: string | null }>(
      'SELECT stream_position, device_id FROM device_list_changes WHERE user_id = $1 AND stream_position = ANY($2::bigint[]) ORDER BY stream_position',
      [userId, [...positions]],
    );
    const edus: { eduType: string; content: Json }[] = [];
    const deviceChanges = rows.filter((r) => r.device_id !== null).map((r) => ({ position: r.stream_position, deviceId: r.device_id! }));
    if (deviceChanges.length > 0) {
      // Positions of one transaction are consecutive (the stream row lock), so only the first needs its predecessor read.
      const { rows: before } = await this.db.query<{ prev: number | null }>(
        'SELECT MAX(stream_position) AS prev FROM device_list_changes WHERE user_id = $1 AND device_id IS NOT NULL AND stream_position < $2',
        [userId, deviceChanges[0]!.position],
      );
      const devices = await this.devicesNow(userId, deviceChanges.map((c) => c.deviceId));
      for (const content of deviceListUpdateContents(userId, deviceChanges, before[0]?.prev ?? null, devices)) edus.push({ eduType: DEVICE_LIST_UPDATE, content });
    }
    if (rows.some((r) => r.device_id === null)) {
      const { rows: keys } = await this.db.query<{ key_type: string; key_json: Json }>('SELECT key_type, key_json FROM cross_signing_keys WHERE user_id = $1', [userId]);
      const content = signingKeyUpdateContent(userId, Object.fromEntries(keys.map((k) => [k.key_type, k.key_json])));
      if (content) edus.push({ eduType: SIGNING_KEY_UPDATE, content });
    }
    // One after the other: fanout-sender queues them per destination in the order published, so the chain arrives in order.
    for (const edu of edus) await publishOn(this.bus, Subjects.eduOutbound, { ...edu, to: { destinations } });
  }

  private async devicesNow(userId: string, deviceIds: string[]): Promise<Map<string, DeviceNow>> {
    const { rows } = await this.db.query<{ device_id: string; display_name: string | null; keys: Json | null }>(
      `SELECT d.device_id, d.display_name, k.keys FROM devices d
       LEFT JOIN device_keys k ON k.user_id = d.user_id AND k.device_id = d.device_id
       WHERE d.user_id = $1 AND d.device_id = ANY($2::text[])`,
      [userId, deviceIds],
    );
    return new Map(rows.map((r) => [r.device_id, { displayName: r.display_name, keys: r.keys }]));
  }

  /** Handles an inbound m.device_list_update or m.signing_key_update; never throws (a bad one is logged and dropped). */
  async receive(edu: InboundEdu): Promise<void> {
    try {
      const read = readDeviceListEdu(edu.eduType, edu.content, edu.origin, this.settings.serverName);
      if ('dropped' in read) {
        this.logger.info({ origin: edu.origin, eduType: edu.eduType, reason: read.dropped }, 'edu.inbound: device list EDU dropped');
        return;
      }
      // Only users some local user shares a room with can appear in anyone's device_lists.changed.
      if (this.membership?.usersSharingRoomsWith) {
        const sharing = await this.membership.usersSharingRoomsWith(read.userId);
        if (!sharing.some((u) => serverNameOf(u) === this.settings.serverName)) return;
      }
      const position = await this.db.transaction((tx) => recordDeviceListChange(tx, read.userId, null));
      await this.changed(read.userId, [position]);
    } catch (err) {
      this.logger.warn({ err, origin: edu.origin, eduType: edu.eduType }, 'edu.inbound: device list EDU dropped');
    }
  }

  private async usersSharingRoomsWith(userId: string): Promise<string[]> {
    return (await this.membership?.usersSharingRoomsWith?.(userId)) ?? [];
  }
}
