import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { DB, LOGGER } from '@tessera/http';
import { getCurrentStateEvent, getUserMemberships, type Db } from '@tessera/storage';
import type { Logger } from 'pino';
import { AccountsService } from '../accounts/accounts.service.js';
import { ProfileService, type ProfileChange } from '../user-data/profile.service.js';
import { RoomInput } from './room-input.service.js';
import { RoomsService } from './rooms.service.js';

/**
 * What account changes do to rooms, as Synapse does: a new displayname or avatar_url is sent
 * as a new m.room.member join event in each room the user is joined to; a deactivated
 * account leaves every room it is joined to, invited to or knocking on. A room that refuses
 * (the user may no longer send there) is logged and skipped: the others still change.
 */
@Injectable()
export class MembershipPropagation implements OnModuleInit {
  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(RoomInput) private readonly input: RoomInput,
    @Inject(RoomsService) private readonly rooms: RoomsService,
    @Inject(ProfileService) private readonly profiles: ProfileService,
    @Inject(AccountsService) private readonly accounts: AccountsService,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onModuleInit(): void {
    this.profiles.propagateWith((change) => this.profileChanged(change));
    this.accounts.onDeactivate((userId) => this.leaveEverything(userId));
  }

  private async profileChanged({ userId, profile }: ProfileChange): Promise<void> {
    for (const m of await getUserMemberships(this.db, userId, ['join'])) {
      try {
        const current = await getCurrentStateEvent(this.db, m.roomId, 'm.room.member', userId);
        // The member event's other fields stay (is_direct, custom ones); a reason belonged to the old change.
        const { membership: _m, reason: _r, displayname: _d, avatar_url: _a, ...kept } = (current?.json.content ?? {}) as Record<string, unknown>;
        const content: Record<string, unknown> = { ...kept };
        if (typeof profile.displayname === 'string') content.displayname = profile.displayname;
        if (typeof profile.avatar_url === 'string') content.avatar_url = profile.avatar_url;
        await this.input.membership({ action: 'join', roomId: m.roomId, sender: userId, content });
      } catch (err) {
        this.logger.warn({ err, roomId: m.roomId, userId }, 'profile change not sent to a room');
      }
    }
  }

  private async leaveEverything(userId: string): Promise<void> {
    for (const m of await getUserMemberships(this.db, userId, ['join', 'invite', 'knock'])) {
      try {
        await this.rooms.leave(userId, m.roomId, {});
      } catch (err) {
        this.logger.warn({ err, roomId: m.roomId, userId }, 'deactivated user could not leave a room');
      }
    }
  }
}
