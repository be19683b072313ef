import { Body, Controller, Get, HttpCode, Inject, Param, Post, Put, Query, UseGuards } from '@nestjs/common';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { clientPaths } from '../http/paths.js';
import { objectBody } from '../validation.js';
import { KeysService } from './keys.service.js';
import { ToDeviceService } from './to-device.service.js';

@Controller()
@UseGuards(AccessTokenGuard)
export class E2eeController {
  constructor(
    @Inject(KeysService) private readonly keys: KeysService,
    @Inject(ToDeviceService) private readonly toDevice: ToDeviceService,
  ) {}

  @Post(clientPaths('keys/upload'))
  @HttpCode(200)
  upload(@CurrentRequester() requester: Requester, @Body() body: unknown) {
    return this.keys.upload(requester, objectBody(body));
  }

  @Post(clientPaths('keys/query'))
  @HttpCode(200)
  query(@CurrentRequester() requester: Requester, @Body() body: unknown) {
    return this.keys.query(requester, objectBody(body, false));
  }

  @Post(clientPaths('keys/claim'))
  @HttpCode(200)
  claim(@Body() body: unknown) {
    return this.keys.claim(objectBody(body, false));
  }

  @Get(clientPaths('keys/changes'))
  changes(@CurrentRequester() requester: Requester, @Query('from') from: unknown, @Query('to') to: unknown) {
    return this.keys.changesBetween(requester, from, to);
  }

  @Post(clientPaths('keys/device_signing/upload'))
  @HttpCode(200)
  async uploadCrossSigning(@CurrentRequester() requester: Requester, @Body() body: unknown) {
    await this.keys.uploadCrossSigningKeys(requester, objectBody(body));
    return {};
  }

  @Post(clientPaths('keys/signatures/upload'))
  @HttpCode(200)
  uploadSignatures(@CurrentRequester() requester: Requester, @Body() body: unknown) {
    return this.keys.uploadSignatures(requester, objectBody(body, false));
  }

  @Put(clientPaths('sendToDevice/:eventType/:txnId'))
  async sendToDevice(@CurrentRequester() requester: Requester, @Param('eventType') eventType: string, @Param('txnId') txnId: string, @Body() body: unknown) {
    await this.toDevice.send(requester, eventType, txnId, objectBody(body, false));
    return {};
  }
}
