import { Module } from '@nestjs/common';
import { ClientApiCoreModule } from '../client-api-core.module.js';
import { DirectoryController, PublicDirectoryController } from '../directory/directory.controller.js';
import { DirectoryService } from '../directory/directory.service.js';
import { NotificationCounter } from '../sync/notification-counter.js';
import { SyncNotifier } from '../sync/sync-notifier.js';
import { SyncController } from '../sync/sync.controller.js';
import { SyncService } from '../sync/sync.service.js';
import { MembershipPropagation } from './membership-propagation.js';
import { RoomsMigrator } from './migrations.js';
import { RoomHistoryService } from './room-history.service.js';
import { RemoteRooms } from './remote-rooms.service.js';
import { RoomInput } from './room-input.service.js';
import { RoomReadsModule } from './room-reads.js';
import { RoomReadsController, RoomsController } from './rooms.controller.js';
import { RoomsService } from './rooms.service.js';

/**
 * Rooms, aliases and the directory, and /sync: the Client-Server API over the room pipeline.
 * Writes go to room-server on the bus; reads come from the event log's read models.
 */
@Module({
  imports: [ClientApiCoreModule, RoomReadsModule],
  controllers: [RoomsController, RoomReadsController, DirectoryController, PublicDirectoryController, SyncController],
  providers: [RoomsMigrator, MembershipPropagation, RoomInput, RemoteRooms, RoomsService, RoomHistoryService, DirectoryService, SyncNotifier, NotificationCounter, SyncService],
  exports: [SyncNotifier],
})
export class RoomsModule {}
