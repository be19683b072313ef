import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Put, UseGuards } from '@nestjs/common';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { clientPaths } from '../http/paths.js';
import { objectBody } from '../validation.js';
import { DevicesService } from './devices.service.js';

@Controller()
@UseGuards(AccessTokenGuard)
export class DevicesController {
  constructor(@Inject(DevicesService) private readonly devices: DevicesService) {}

  @Get(clientPaths('devices'))
  list(@CurrentRequester() requester: Requester) {
    return this.devices.list(requester);
  }

  @Get(clientPaths('devices/:deviceId'))
  get(@CurrentRequester() requester: Requester, @Param('deviceId') deviceId: string) {
    return this.devices.get(requester, deviceId);
  }

  @Put(clientPaths('devices/:deviceId'))
  async rename(@CurrentRequester() requester: Requester, @Param('deviceId') deviceId: string, @Body() body: unknown) {
    await this.devices.rename(requester, deviceId, objectBody(body));
    return {};
  }

  @Delete(clientPaths('devices/:deviceId'))
  async delete(@CurrentRequester() requester: Requester, @Param('deviceId') deviceId: string, @Body() body: unknown) {
    await this.devices.delete(requester, deviceId, objectBody(body));
    return {};
  }

  @Post(clientPaths('delete_devices'))
  @HttpCode(200)
  async deleteMany(@CurrentRequester() requester: Requester, @Body() body: unknown) {
    await this.devices.deleteMany(requester, objectBody(body, false));
    return {};
  }
}
