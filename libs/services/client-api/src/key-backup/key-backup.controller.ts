import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Put, Query, UseGuards } from '@nestjs/common';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { clientPaths } from '../http/paths.js';
import { objectBody } from '../validation.js';
import { parseAllRoomsUpload, parseRoomUpload, parseSessionUpload, requireVersionQuery } from './key-backup-body.js';
import { KeyBackupService } from './key-backup.service.js';

/**
 * The spec's "Server-side key backups" endpoints, /room_keys/version[/{version}] and
 * /room_keys/keys[/{roomId}[/{sessionId}]]. Not rate-limited, as in Synapse: a client backs
 * up its keys in bursts of requests when it first enables the backup.
 */
@Controller()
@UseGuards(AccessTokenGuard)
export class KeyBackupController {
  constructor(@Inject(KeyBackupService) private readonly backups: KeyBackupService) {}

  @Get(clientPaths('room_keys/version'))
  currentVersion(@CurrentRequester() requester: Requester) {
    return this.backups.currentVersionInfo(requester.userId);
  }

  @Post(clientPaths('room_keys/version'))
  @HttpCode(200)
  createVersion(@CurrentRequester() requester: Requester, @Body() body: unknown) {
    return this.backups.createVersion(requester.userId, objectBody(body, false));
  }

  @Get(clientPaths('room_keys/version/:version'))
  getVersion(@CurrentRequester() requester: Requester, @Param('version') version: string) {
    return this.backups.versionInfo(requester.userId, version);
  }

  @Put(clientPaths('room_keys/version/:version'))
  updateVersion(@CurrentRequester() requester: Requester, @Param('version') version: string, @Body() body: unknown) {
    return this.backups.updateVersion(requester.userId, version, objectBody(body, false));
  }

  @Delete(clientPaths('room_keys/version/:version'))
  deleteVersion(@CurrentRequester() requester: Requester, @Param('version') version: string) {
    return this.backups.deleteVersion(requester.userId, version);
  }

  @Get(clientPaths('room_keys/keys'))
  allKeys(@CurrentRequester() requester: Requester, @Query('version') version: unknown) {
    return this.backups.allKeys(requester.userId, requireVersionQuery(version));
  }

  @Put(clientPaths('room_keys/keys'))
  storeAllKeys(@CurrentRequester() requester: Requester, @Query('version') version: unknown, @Body() body: unknown) {
    const backupVersion = requireVersionQuery(version);
    return this.backups.storeKeys(requester.userId, backupVersion, parseAllRoomsUpload(objectBody(body, false)));
  }

  @Delete(clientPaths('room_keys/keys'))
  deleteAllKeys(@CurrentRequester() requester: Requester, @Query('version') version: unknown) {
    return this.backups.deleteKeys(requester.userId, requireVersionQuery(version), {});
  }

  @Get(clientPaths('room_keys/keys/:roomId'))
  roomKeys(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Query('version') version: unknown) {
    return this.backups.roomKeys(requester.userId, requireVersionQuery(version), roomId);
  }

  @Put(clientPaths('room_keys/keys/:roomId'))
  storeRoomKeys(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Query('version') version: unknown, @Body() body: unknown) {
    const backupVersion = requireVersionQuery(version);
    return this.backups.storeKeys(requester.userId, backupVersion, parseRoomUpload(roomId, objectBody(body, false)));
  }

  @Delete(clientPaths('room_keys/keys/:roomId'))
  deleteRoomKeys(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Query('version') version: unknown) {
    return this.backups.deleteKeys(requester.userId, requireVersionQuery(version), { roomId });
  }

  @Get(clientPaths('room_keys/keys/:roomId/:sessionId'))
  sessionKey(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Param('sessionId') sessionId: string, @Query('version') version: unknown) {
    return this.backups.sessionKey(requester.userId, requireVersionQuery(version), roomId, sessionId);
  }

  @Put(clientPaths('room_keys/keys/:roomId/:sessionId'))
  storeSessionKey(
    @CurrentRequester() requester: Requester,
    @Param('roomId') roomId: string,
    @Param('sessionId') sessionId: string,
    @Query('version') version: unknown,
    @Body() body: unknown,
  ) {
    const backupVersion = requireVersionQuery(version);
    return this.backups.storeKeys(requester.userId, backupVersion, parseSessionUpload(roomId, sessionId, objectBody(body, false)));
  }

  @Delete(clientPaths('room_keys/keys/:roomId/:sessionId'))
  deleteSessionKey(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Param('sessionId') sessionId: string, @Query('version') version: unknown) {
    return this.backups.deleteKeys(requester.userId, requireVersionQuery(version), { roomId, sessionId });
  }
}
