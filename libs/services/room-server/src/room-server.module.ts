import { Module } from '@nestjs/common';
import { RoomFederationService } from './federation/room-federation.provider.js';
import { RoomServerService } from './room-server.provider.js';

/**
 * room-server: builds, authorizes and orders room events (the decider, DESIGN "The path of an event").
 * It serves no HTTP routes: its process exposes only the health probes. Its bus handlers and
 * providers are added here as they are built.
 */
@Module({ providers: [RoomServerService, RoomFederationService] })
export class RoomServerModule {}
