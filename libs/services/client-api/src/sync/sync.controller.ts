import { Controller, Get, Inject, Query, UseGuards } from '@nestjs/common';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { PresenceService } from '../ephemeral/presence.service.js';
import { badJson, invalidParam } from '../errors.js';
import { clientPaths } from '../http/paths.js';
import type { SyncFilter } from '../rooms/event-filter.js';
import { validateFilter } from '../user-data/filter-validation.js';
import { FiltersService } from '../user-data/filters.service.js';
import { queryInteger } from '../validation.js';
import { SyncService } from './sync.service.js';

/** Longest long-poll a client may ask for; longer requests are cut to it (as Synapse). */
const MAX_TIMEOUT_MS = 300_000;
const PRESENCE_VALUES = ['online', 'offline', 'unavailable'];
/** Inline filters kept parsed and validated: a client sends the same one with every poll. */
const MAX_INLINE_FILTERS = 1_000;

@Controller()
@UseGuards(AccessTokenGuard)
export class SyncController {
  /** The presence each user's syncs last set here: a sync sets it only when it changes. */
  private readonly lastSetPresence = new Map<string, string>();
  private readonly inlineFilters = new Map<string, SyncFilter>();

  constructor(
    @Inject(SyncService) private readonly syncs: SyncService,
    @Inject(FiltersService) private readonly filters: FiltersService,
    @Inject(PresenceService) private readonly presence: PresenceService,
  ) {}

  @Get(clientPaths('sync'))
  async sync(
    @CurrentRequester() r: Requester,
    @Query('since') since?: string,
    @Query('filter') filter?: string,
    @Query('full_state') fullState?: string,
    @Query('set_presence') setPresence?: string,
    @Query('timeout') timeout?: string,
    @Query('use_state_after') useStateAfter?: string,
  ) {
    if (fullState !== undefined && fullState !== 'true' && fullState !== 'false') throw invalidParam('"full_state" must be true or false');
    if (useStateAfter !== undefined && useStateAfter !== 'true' && useStateAfter !== 'false') throw invalidParam('"use_state_after" must be true or false');
    if (setPresence !== undefined && !PRESENCE_VALUES.includes(setPresence)) throw invalidParam(`"set_presence" must be one of ${PRESENCE_VALUES.join(', ')}`);
    const timeoutMs = Math.min(Math.max(0, queryInteger(timeout, 'timeout', 0)), MAX_TIMEOUT_MS);
    const syncFilter = await this.filterOf(r.userId, filter);
    await this.applyPresence(r.userId, setPresence ?? 'online');
    return this.syncs.sync({
      userId: r.userId,
      deviceId: r.deviceId,
      since: since === '' ? undefined : since,
      filter: syncFilter,
      fullState: fullState === 'true',
      timeoutMs,
      useStateAfter: useStateAfter === 'true',
    });
  }

  private async filterOf(userId: string, filter: string | undefined): Promise<SyncFilter> {
    if (filter === undefined || filter === '') return {};
    if (filter.trimStart().startsWith('{')) {
      const known = this.inlineFilters.get(filter);
      if (known) return known;
      let parsed: unknown;
      try {
        parsed = JSON.parse(filter);
      } catch {
        throw badJson('"filter" is neither a filter id nor valid JSON');
      }
      // Only valid filters are kept (validateFilter throws); sync never modifies a filter.
      const valid = validateFilter(parsed) as SyncFilter;
      if (this.inlineFilters.size >= MAX_INLINE_FILTERS) this.inlineFilters.clear();
      this.inlineFilters.set(filter, valid);
      return valid;
    }
    const stored = await this.filters.find(userId, filter);
    if (!stored) throw invalidParam(`No filter ${JSON.stringify(filter)}: create it with POST /user/{userId}/filter`);
    return stored as SyncFilter;
  }

  /** The spec: set_presence (default online) marks the user's presence while they sync. */
  private async applyPresence(userId: string, presence: string): Promise<void> {
    if (this.lastSetPresence.get(userId) === presence) return;
    const current = await this.presence.getStatus(userId).catch(() => undefined);
    if (current?.presence !== presence) await this.presence.setStatus(userId, userId, { presence });
    this.lastSetPresence.set(userId, presence);
  }
}
