import { Module } from '@nestjs/common';
import { ClientApiCoreModule } from '../client-api-core.module.js';
import { DirectoryController, PublicDirectoryController } from '../directory/directory.controller.js';
import { DirectoryService } from '../directory/directory.service.js';
import { NotificationsController } from '../push/notifications.controller.js';
import { NotificationsService } from '../push/notifications.service.js';
import { PushSender } from '../push/push-sender.js';
import { pushSenderSettingsProvider } from '../push/push-sender-settings.js';
import { BundledAggregations } from '../relations/bundled-aggregations.js';
import { RelationPages } from '../relations/relation-pages.js';
import { RelationsController } from '../relations/relations.controller.js';
import { RelationsService } from '../relations/relations.service.js';
import { ThreadAggregations } from '../relations/thread-aggregations.js';
import { NotificationCounter } from '../sync/notification-counter.js';
import { SyncNotifier } from '../sync/sync-notifier.js';
import { SyncController } from '../sync/sync.controller.js';
import { SyncService } from '../sync/sync.service.js';
import { HierarchyService } from '../spaces/hierarchy.service.js';
import { SpaceRooms } from '../spaces/space-rooms.js';
import { HierarchyController, RoomSummaryController } from '../spaces/spaces.controller.js';
import { MembershipPropagation } from './membership-propagation.js';
import { RoomsMigrator } from './migrations.js';
import { RoomBackfill } from './room-backfill.js';
import { RoomHistoryService } from './room-history.service.js';
import { RemoteRooms } from './remote-rooms.service.js';
import { RoomInput } from './room-input.service.js';
import { RoomUpgradeController } from './room-upgrade.controller.js';
import { RoomUpgradeService } from './room-upgrade.service.js';
import { RoomReadsModule } from './room-reads.js';
import { RoomReadsController, RoomsController } from './rooms.controller.js';
import { RoomsService } from './rooms.service.js';
import { UpgradedRoomCarryOver } from './upgraded-room-carry-over.js';
import { SearchController } from '../search/search.controller.js';
import { SearchService } from '../search/search.service.js';
import { ReportsController } from '../reports/reports.controller.js';
import { ReportsService } from '../reports/reports.service.js';
import { TimestampToEventController } from '../timestamp-to-event/timestamp-to-event.controller.js';
import { UserDirectoryController } from '../user-directory/user-directory.controller.js';
import { UserDirectoryService } from '../user-directory/user-directory.service.js';
import { EventStreamService } from '../legacy-sync/event-stream.service.js';
import { InitialSyncService } from '../legacy-sync/initial-sync.service.js';
import { LegacySyncController } from '../legacy-sync/legacy-sync.controller.js';
import { SlidingRoomData } from '../sliding-sync/sliding-room-data.js';
import { SlidingSyncExtensionsBuilder } from '../sliding-sync/sliding-extensions.js';
import { SlidingSyncController } from '../sliding-sync/sliding-sync.controller.js';
import { SlidingSyncService } from '../sliding-sync/sliding-sync.service.js';

/**
 * Rooms, aliases and the directory, and /sync: the Client-Server API over the room pipeline.
 * Writes go to room-server on the bus; reads come from the event log's read models.
 */
@Module({
  imports: [ClientApiCoreModule, RoomReadsModule],
  controllers: [HierarchyController, RoomSummaryController, RoomsController, RoomReadsController, RelationsController, DirectoryController, PublicDirectoryController, SyncController, UserDirectoryController, ReportsController, TimestampToEventController, NotificationsController, RoomUpgradeController, SearchController, LegacySyncController, SlidingSyncController],
  providers: [SpaceRooms, HierarchyService, RoomsMigrator, RelationsService, RelationPages, ThreadAggregations, BundledAggregations, MembershipPropagation, RoomInput, RemoteRooms, RoomsService, RoomBackfill, RoomHistoryService, DirectoryService, SyncNotifier, NotificationCounter, SyncService, UserDirectoryService, ReportsService, NotificationsService, RoomUpgradeService, SearchService, pushSenderSettingsProvider, PushSender, EventStreamService, InitialSyncService, SlidingRoomData, SlidingSyncExtensionsBuilder, SlidingSyncService, UpgradedRoomCarryOver],
  exports: [SyncNotifier, RoomsService, RoomInput],
})
export class RoomsModule {}
