import { Module } from '@nestjs/common';
import { WellKnownModule } from '@tessera/http';
import { FederationContext } from './federation-context.js';
import { FederationVersionController } from './federation-version.controller.js';
import { HierarchyController } from './hierarchy.controller.js';
import { KeyQueryController } from './key-query.controller.js';
import { MediaController } from './media.controller.js';
import { MembershipController } from './membership.controller.js';
import { OpenIdUserInfoController } from './openid-userinfo.controller.js';
import { QueriesController } from './queries.controller.js';
import { RoomHistoryController } from './room-history.controller.js';
import { ServerKeysController } from './server-keys.controller.js';
import { TransactionsController } from './transactions.controller.js';

/**
 * The Server-Server API edge (/_matrix/federation/..., /_matrix/key/...): verifies what
 * arrives and hands it to room-server over the bus. Each capability adds its controller here.
 */
@Module({
  imports: [WellKnownModule],
  providers: [FederationContext],
  controllers: [
    FederationVersionController, ServerKeysController, KeyQueryController, HierarchyController,
    TransactionsController, RoomHistoryController, MembershipController, QueriesController,
    OpenIdUserInfoController, MediaController,
  ],
})
export class FederationIngressModule {}
