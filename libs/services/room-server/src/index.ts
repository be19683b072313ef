// The public surface of @tessera/room-server-service.
import type { ServiceDefinition } from '@tessera/http';
import { federationMigrations } from '@tessera/storage';
import { eventLogMigrations } from '@tessera/storage';
import { RoomServerModule } from './room-server.module.js';

export { RoomServerModule } from './room-server.module.js';
export { RoomServer, type RoomServerOptions } from './room-server.js';
export { RoomFederation, type RoomFederationOptions } from './federation/room-federation.js';

export const roomServerService: ServiceDefinition = {
  name: 'room-server',
  module: RoomServerModule,
  listener: 'none',
  defaultHealthPort: 8101,
  // server_keys (the KeyRing's store) for joins and fetched events.
  migrations: federationMigrations,
  // It reads the event log persistence writes; either process may start first.
  migrations: eventLogMigrations,
};
