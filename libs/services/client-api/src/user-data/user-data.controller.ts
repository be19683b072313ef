import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Put, UseGuards } from '@nestjs/common';
import { DEFAULT_ROOM_VERSION, ROOM_VERSIONS } from '@tessera/protocol';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { RateLimited, RateLimitGuard } from '../auth/rate-limit.guard.js';
import { MatrixError, badJson, forbidden, notFound } from '../errors.js';
import { clientPaths } from '../http/paths.js';
import { isPlainObject, objectBody, requireRoomIdParam, requireUserIdParam } from '../validation.js';
import { AccountDataService } from './account-data.service.js';
import { FiltersService } from './filters.service.js';
import { ProfileService } from './profile.service.js';

/** Account data types the server keeps itself (spec: PUT is refused with 405 M_BAD_JSON). */
const SERVER_MANAGED_ACCOUNT_DATA = ['m.fully_read', 'm.push_rules'];

@Controller()
@UseGuards(AccessTokenGuard, RateLimitGuard)
export class CapabilitiesController {
  @Get(clientPaths('capabilities'))
  @RateLimited()
  capabilities() {
    const available = Object.fromEntries([...ROOM_VERSIONS.values()].map((v) => [v.id, v.stable ? 'stable' : 'unstable']));
    return {
      capabilities: {
        'm.change_password': { enabled: true },
        'm.room_versions': { default: DEFAULT_ROOM_VERSION, available },
        'm.set_displayname': { enabled: true },
        'm.set_avatar_url': { enabled: true },
        'm.3pid_changes': { enabled: false },
        'm.get_login_token': { enabled: true },
      },
    };
  }
}

/** Profiles: reading needs no token (spec: GET /profile is public unless the server restricts it). */
@Controller()
export class ProfileController {
  constructor(@Inject(ProfileService) private readonly profiles: ProfileService) {}

  @Get(clientPaths('profile/:userId'))
  getProfile(@Param('userId') userId: string) {
    return this.profiles.getProfile(requireUserIdParam(userId));
  }

  @Get(clientPaths('profile/:userId/:keyName'))
  getField(@Param('userId') userId: string, @Param('keyName') keyName: string) {
    return this.profiles.getField(requireUserIdParam(userId), keyName);
  }
}

@Controller()
@UseGuards(AccessTokenGuard, RateLimitGuard)
export class ProfileWriteController {
  constructor(@Inject(ProfileService) private readonly profiles: ProfileService) {}

  @Put(clientPaths('profile/:userId/:keyName'))
  @RateLimited()
  async setField(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Param('keyName') keyName: string, @Body() body: unknown) {
    await this.profiles.setField(requester.userId, requireUserIdParam(userId), keyName, objectBody(body, false));
    return {};
  }

  @Delete(clientPaths('profile/:userId/:keyName'))
  @RateLimited()
  async deleteField(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Param('keyName') keyName: string) {
    await this.profiles.deleteField(requester.userId, requireUserIdParam(userId), keyName);
    return {};
  }
}

@Controller()
@UseGuards(AccessTokenGuard)
export class AccountDataController {
  constructor(
    @Inject(AccountDataService) private readonly accountData: AccountDataService,
    @Inject(FiltersService) private readonly filters: FiltersService,
  ) {}

  @Get(clientPaths('user/:userId/account_data/:type'))
  getGlobal(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Param('type') type: string) {
    return this.read(requester, userId, '', type);
  }

  @Put(clientPaths('user/:userId/account_data/:type'))
  putGlobal(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Param('type') type: string, @Body() body: unknown) {
    return this.write(requester, userId, '', type, body);
  }

  @Get(clientPaths('user/:userId/rooms/:roomId/account_data/:type'))
  getRoom(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Param('roomId') roomId: string, @Param('type') type: string) {
    return this.read(requester, userId, requireRoomIdParam(roomId), type);
  }

  @Put(clientPaths('user/:userId/rooms/:roomId/account_data/:type'))
  putRoom(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Param('roomId') roomId: string, @Param('type') type: string, @Body() body: unknown) {
    return this.write(requester, userId, requireRoomIdParam(roomId), type, body);
  }

  @Get(clientPaths('user/:userId/rooms/:roomId/tags'))
  async getTags(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Param('roomId') roomId: string) {
    this.checkSelf(requester, userId);
    const content = await this.accountData.get(userId, requireRoomIdParam(roomId), 'm.tag');
    return { tags: isPlainObject(content?.tags) ? content.tags : {} };
  }

  @Put(clientPaths('user/:userId/rooms/:roomId/tags/:tag'))
  async putTag(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Param('roomId') roomId: string, @Param('tag') tag: string, @Body() body: unknown) {
    this.checkSelf(requester, userId);
    const tagBody = objectBody(body);
    if (tagBody.order !== undefined && (typeof tagBody.order !== 'number' || tagBody.order < 0 || tagBody.order > 1)) throw badJson('"order" must be a number from 0 to 1');
    if (Buffer.byteLength(tag) > 255) throw new MatrixError(400, 'M_INVALID_PARAM', 'Tags are at most 255 bytes');
    await this.updateTags(userId, requireRoomIdParam(roomId), (tags) => (tags[tag] = tagBody));
    return {};
  }

  @Delete(clientPaths('user/:userId/rooms/:roomId/tags/:tag'))
  async deleteTag(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Param('roomId') roomId: string, @Param('tag') tag: string) {
    this.checkSelf(requester, userId);
    await this.updateTags(userId, requireRoomIdParam(roomId), (tags) => delete tags[tag]);
    return {};
  }

  @Post(clientPaths('user/:userId/filter'))
  @HttpCode(200)
  createFilter(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Body() body: unknown) {
    return this.filters.create(requester.userId, userId, body ?? {});
  }

  @Get(clientPaths('user/:userId/filter/:filterId'))
  getFilter(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Param('filterId') filterId: string) {
    return this.filters.get(requester.userId, userId, filterId);
  }

  private checkSelf(requester: Requester, userId: string): void {
    if (requester.userId !== userId) throw forbidden("You cannot access another user's account data");
  }

  private async read(requester: Requester, userId: string, roomId: string, type: string) {
    this.checkSelf(requester, userId);
    const content = await this.accountData.get(userId, roomId, type);
    if (!content) throw notFound(`No account data of type ${type}`);
    return content;
  }

  private async write(requester: Requester, userId: string, roomId: string, type: string, body: unknown) {
    this.checkSelf(requester, userId);
    if (SERVER_MANAGED_ACCOUNT_DATA.includes(type)) {
      throw new MatrixError(405, 'M_BAD_JSON', `${type} is managed by the server: use the ${type === 'm.push_rules' ? 'push rules API' : 'read markers API'}`);
    }
    await this.accountData.set(userId, roomId, type, objectBody(body, false));
    return {};
  }

  private async updateTags(userId: string, roomId: string, change: (tags: Record<string, unknown>) => void): Promise<void> {
    const content = await this.accountData.get(userId, roomId, 'm.tag');
    const tags = { ...(isPlainObject(content?.tags) ? content.tags : {}) };
    change(tags);
    await this.accountData.set(userId, roomId, 'm.tag', { tags });
  }
}
