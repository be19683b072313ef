import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Put, Query, Res, UseGuards } from '@nestjs/common';
import { sendCreated } from '@tessera/http';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { badJson, missingParam } from '../errors.js';
import { objectBody, requireUserIdParam } from '../validation.js';
import { ServerAdminGuard } from './admin.guard.js';
import { UsersAdminService, type ListUsersQuery } from './users-admin.service.js';
import { WhoisService } from './whois.service.js';

const V1 = '/_synapse/admin/v1';
const V2 = '/_synapse/admin/v2';

/** The reply, answered by hand where the status depends on the outcome (201 for a created user). */
interface StatusReply {
  code(status: number): { send(body: unknown): unknown };
}

/** Synapse's user admin API: server admins only. */
@Controller()
@UseGuards(AccessTokenGuard, ServerAdminGuard)
export class UsersAdminController {
  constructor(
    @Inject(UsersAdminService) private readonly users: UsersAdminService,
    @Inject(WhoisService) private readonly whoisService: WhoisService,
  ) {}

  @Get(`${V2}/users`)
  list(@Query() query: ListUsersQuery) {
    return this.users.list(query);
  }

  @Get(`${V2}/users/:userId`)
  get(@Param('userId') userId: string) {
    return this.users.get(requireUserIdParam(userId));
  }

  @Put(`${V2}/users/:userId`)
  async put(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Body() body: unknown, @Res() reply: StatusReply) {
    const { created, user } = await this.users.put(requester, requireUserIdParam(userId), objectBody(body, false));
    if (created) sendCreated(reply, user);
    else reply.code(200).send(user);
  }

  @Post(`${V1}/deactivate/:userId`)
  @HttpCode(200)
  deactivate(@Param('userId') userId: string, @Body() body: unknown) {
    return this.users.deactivate(requireUserIdParam(userId), objectBody(body));
  }

  @Post(`${V1}/reset_password/:userId`)
  @HttpCode(200)
  async resetPassword(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Body() body: unknown) {
    await this.users.resetPassword(requester, requireUserIdParam(userId), objectBody(body, false));
    return {};
  }

  @Get(`${V1}/users/:userId/admin`)
  isAdmin(@Param('userId') userId: string) {
    return this.users.isAdmin(requireUserIdParam(userId));
  }

  @Put(`${V1}/users/:userId/admin`)
  async putAdmin(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Body() body: unknown) {
    await this.users.putAdmin(requester, requireUserIdParam(userId), objectBody(body, false));
    return {};
  }

  @Get(`${V2}/users/:userId/devices`)
  devices(@Param('userId') userId: string) {
    return this.users.devices(requireUserIdParam(userId));
  }

  @Get(`${V2}/users/:userId/devices/:deviceId`)
  device(@Param('userId') userId: string, @Param('deviceId') deviceId: string) {
    return this.users.device(requireUserIdParam(userId), deviceId);
  }

  @Delete(`${V2}/users/:userId/devices/:deviceId`)
  async deleteDevice(@Param('userId') userId: string, @Param('deviceId') deviceId: string) {
    await this.users.deleteDevices(requireUserIdParam(userId), [deviceId]);
    return {};
  }

  @Post(`${V2}/users/:userId/delete_devices`)
  @HttpCode(200)
  async deleteDevices(@Param('userId') userId: string, @Body() body: unknown) {
    const devices = objectBody(body, false).devices;
    if (devices === undefined) throw missingParam('Missing params: ["devices"]');
    if (!Array.isArray(devices) || !devices.every((d) => typeof d === 'string')) throw badJson('"devices" must be a list of device ids');
    await this.users.deleteDevices(requireUserIdParam(userId), devices as string[]);
    return {};
  }

  @Get(`${V1}/users/:userId/joined_rooms`)
  joinedRooms(@Param('userId') userId: string) {
    return this.users.joinedRooms(requireUserIdParam(userId));
  }

  /** The Client-Server API's whois (admin/whois.service.ts), under the admin prefix. */
  @Get(`${V1}/whois/:userId`)
  whois(@CurrentRequester() requester: Requester, @Param('userId') userId: string) {
    return this.whoisService.whois(requester.userId, requireUserIdParam(userId));
  }
}
