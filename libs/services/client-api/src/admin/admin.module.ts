import { Module } from '@nestjs/common';
import { ClientApiCoreModule } from '../client-api-core.module.js';
import { RoomsModule } from '../rooms/rooms.module.js';
import { ServerAdminGuard } from './admin.guard.js';
import { RoomsAdminController } from './rooms-admin.controller.js';
import { RoomsAdminService } from './rooms-admin.service.js';
import { ServerVersionController } from './server-version.controller.js';
import { UsersAdminController } from './users-admin.controller.js';
import { UsersAdminService } from './users-admin.service.js';

/**
 * The parts of Synapse's admin API (/_synapse/admin/...) operators and the synapse-admin web
 * UI use most: users (list, details, create or modify, deactivate, passwords, admin flag,
 * devices, rooms, whois) and rooms (list, details, members, state, block, delete). Shared-secret
 * registration and registration tokens live with the accounts (accounts/).
 */
@Module({
  imports: [ClientApiCoreModule, RoomsModule],
  controllers: [ServerVersionController, UsersAdminController, RoomsAdminController],
  providers: [ServerAdminGuard, UsersAdminService, RoomsAdminService],
})
export class AdminModule {}
