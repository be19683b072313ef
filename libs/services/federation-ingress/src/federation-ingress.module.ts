import { Module } from '@nestjs/common';
import { WellKnownModule } from '@tessera/http';
import { FederationVersionController } from './federation-version.controller.js';
import { ServerKeysController } from './server-keys.controller.js';

/**
 * The Server-Server API edge (/_matrix/federation/..., /_matrix/key/...): verifies what
 * arrives and hands it to room-server over the bus. Each capability adds its controller here.
 */
@Module({
  imports: [WellKnownModule],
  controllers: [FederationVersionController, ServerKeysController],
})
export class FederationIngressModule {}
