import { Body, Controller, HttpCode, Inject, Post, Query, UseGuards } from '@nestjs/common';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { PresenceService } from '../ephemeral/presence.service.js';
import { invalidParam } from '../errors.js';
import { isPlainObject } from '../validation.js';
import { parseSlidingSyncRequest } from './sliding-sync-request.js';
import { SlidingSyncService } from './sliding-sync.service.js';

/** The unstable path Element X and the Matrix SDKs call (advertised in /versions as org.matrix.simplified_msc3575). */
export const SLIDING_SYNC_PATH = '/_matrix/client/unstable/org.matrix.simplified_msc3575/sync';
const PRESENCE_VALUES = ['online', 'offline', 'unavailable'];

/**
 * POST .../org.matrix.simplified_msc3575/sync (MSC4186). Authenticated, and like /sync not
 * rate limited (a client polls it continuously; the long poll is its own throttle).
 */
@Controller()
@UseGuards(AccessTokenGuard)
export class SlidingSyncController {
  /** The presence each user's syncs last set here: set only when it changes (as /sync). */
  private readonly lastSetPresence = new Map<string, string>();

  constructor(
    @Inject(SlidingSyncService) private readonly slidingSync: SlidingSyncService,
    @Inject(PresenceService) private readonly presence: PresenceService,
  ) {}

  @Post(SLIDING_SYNC_PATH)
  @HttpCode(200)
  async sync(
    @CurrentRequester() r: Requester,
    @Body() body: unknown,
    @Query('pos') pos?: string,
    @Query('timeout') timeout?: string,
    @Query('set_presence') setPresence?: string,
  ) {
    const request = parseSlidingSyncRequest(body, { pos, timeout });
    const presence = setPresence ?? (isPlainObject(body) && typeof body.set_presence === 'string' ? body.set_presence : 'online');
    if (!PRESENCE_VALUES.includes(presence)) throw invalidParam(`"set_presence" must be one of ${PRESENCE_VALUES.join(', ')}`);
    await this.applyPresence(r.userId, presence);
    return this.slidingSync.sync(r.userId, r.deviceId, request);
  }

  private async applyPresence(userId: string, presence: string): Promise<void> {
    if (this.lastSetPresence.get(userId) === presence) return;
    const current = await this.presence.getStatus(userId).catch(() => undefined);
    if (current?.presence !== presence) await this.presence.setStatus(userId, userId, { presence });
    if (this.lastSetPresence.size >= 100_000) this.lastSetPresence.clear();
    this.lastSetPresence.set(userId, presence);
  }
}
