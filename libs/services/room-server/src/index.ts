// The public surface of @tessera/room-server-service.
import type { ServiceDefinition } from '@tessera/http';
import { eventLogMigrations, federationMigrations } from '@tessera/storage';
import { RoomServerModule } from './room-server.module.js';

export { RoomServerModule } from './room-server.module.js';
export { RoomServer, type RoomServerOptions } from './room-server.js';
export { RoomFederation, type RoomFederationOptions } from './federation/room-federation.js';

export const roomServerService: ServiceDefinition = {
  name: 'room-server',
  module: RoomServerModule,
  listener: 'none',
  defaultHealthPort: 8101,
  // It reads the event log persistence writes; either process may start first. server_keys
  // and the other federation tables: its federation side fetches keys and events.
  migrations: [...eventLogMigrations, ...federationMigrations],
};
