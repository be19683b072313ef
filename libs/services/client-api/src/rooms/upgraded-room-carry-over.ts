import { Inject, Injectable } from '@nestjs/common';
import { DB, LOGGER } from '@tessera/http';
import { getCurrentStateEvent, getRoomMembers, type Db } from '@tessera/storage';
import type { Logger } from 'pino';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { PushRulesService } from '../user-data/push-rules.service.js';
import { isPlainObject, serverNameOf } from '../validation.js';

/**
 * What a user's settings for a room carry into the room that replaced it, as Synapse does
 * (copy_user_state_on_room_upgrade): their push rules for the old room are copied for the new
 * one when they join it (the room's m.room.create names the old one as predecessor, whether it
 * was made by POST /upgrade or by hand), and for every local member of the old room when it is
 * upgraded here. A failure is logged: the join or upgrade itself stands.
 */
@Injectable()
export class UpgradedRoomCarryOver {
  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(PushRulesService) private readonly pushRules: PushRulesService,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** After a local user joined `roomId` (or created it). */
  async joined(userId: string, roomId: string): Promise<void> {
    try {
      const create = await getCurrentStateEvent(this.db, roomId, 'm.room.create', '');
      const predecessor = create?.json.content?.predecessor;
      if (!isPlainObject(predecessor) || typeof predecessor.room_id !== 'string') return;
      await this.pushRules.copyRoomRules(userId, predecessor.room_id, roomId);
    } catch (err) {
      this.logger.warn({ err, roomId, userId }, 'room upgrade: settings of the old room not carried over on join');
    }
  }

  /** After `oldRoomId` was upgraded here to `newRoomId`: for each local member of the old room. */
  async upgraded(oldRoomId: string, newRoomId: string): Promise<void> {
    try {
      for (const userId of await getRoomMembers(this.db, oldRoomId, 'join')) {
        if (serverNameOf(userId) === this.settings.serverName) await this.pushRules.copyRoomRules(userId, oldRoomId, newRoomId);
      }
    } catch (err) {
      this.logger.warn({ err, oldRoomId, newRoomId }, 'room upgrade: settings of the old room not carried over');
    }
  }
}
