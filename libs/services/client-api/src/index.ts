// The public surface of @tessera/client-api-service.
import type { ServiceDefinition } from '@tessera/http';
import { ClientApiModule } from './client-api.module.js';
import { clientApiMigrations } from './storage/migrations.js';

export { ClientApiModule } from './client-api.module.js';
export { SUPPORTED_SPEC_VERSIONS, VersionsController } from './versions.controller.js';

export const clientApiService: ServiceDefinition = {
  name: 'client-api',
  module: ClientApiModule,
  listener: 'client',
  defaultHealthPort: 8008,
  migrations: clientApiMigrations,
};

// Accounts, devices, tokens, user data, ephemeral data, E2EE (see client-api-core.module.ts).
export { ClientApiCoreModule, CLIENT_API_SETTINGS_OVERRIDES, type ClientApiOverrides } from './client-api-core.module.js';
export { clientApiMigrations } from './storage/migrations.js';
export { CLIENT_API_SETTINGS, clientApiSettings, type ClientApiSettings, type RateLimitSettings, type JwtLoginSettings } from './settings.js';
export { MatrixError } from './errors.js';
export { AccessTokenGuard, CurrentRequester, accessTokenOf, requesterOf } from './auth/auth.guard.js';
export { AccessTokensService, type Requester } from './auth/access-tokens.service.js';
export { RateLimitGuard, RateLimited } from './auth/rate-limit.guard.js';
export { StreamChanges, type StreamChange, type KeyCountsChange } from './stream-changes.js';
export { ClientChangesRelay } from './client-changes-relay.js';
export { ROOM_MEMBERSHIP, type RoomMembership } from './room-membership.js';
export { SYNC_STREAMS, encodeSyncToken, decodeSyncToken, type SyncPositions, type SyncStream } from './sync-token.js';
export { AccountDataService, type AccountDataChanges, type AccountDataEvent } from './user-data/account-data.service.js';
export { FiltersService } from './user-data/filters.service.js';
export { validateFilter } from './user-data/filter-validation.js';
export { ProfileService, type ProfileChange } from './user-data/profile.service.js';
export { PushRulesService } from './user-data/push-rules.service.js';
export { ReceiptsService, type ReceiptChanges, type ReceiptContent } from './user-data/receipts.service.js';
export { TypingService, type TypingChanges } from './ephemeral/typing.service.js';
export { PresenceService, type PresenceEvent } from './ephemeral/presence.service.js';
export { EPHEMERAL_STORE, type EphemeralStore } from './ephemeral/ephemeral-store.js';
export { MemoryEphemeralStore } from './ephemeral/memory-ephemeral-store.js';
export { RedisEphemeralStore, createEphemeralStore } from './ephemeral/redis-ephemeral-store.js';
export { KeysService, type DeviceListChanges } from './e2ee/keys.service.js';
export { ToDeviceService, type ToDeviceBatch, type ToDeviceEvent } from './e2ee/to-device.service.js';
export { clientPaths, v1Paths } from './http/paths.js';
export { EduBridge } from './federation/edu-bridge.js';
export { objectBody } from './validation.js';
// Push notifications to push gateways (see push/push-sender.ts).
export { PushSender, PUSH_SENDER_CONSUMER } from './push/push-sender.js';
export { GatewayClient, GatewayError, type GatewayAnswer } from './push/gateway-client.js';
export { acquirePushLease, pushLeaseHolder } from './push/push-lease.js';
