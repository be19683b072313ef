import { Inject, Injectable, Module, type OnModuleDestroy } from '@nestjs/common';
import type { HomeserverConfig } from '@tessera/config';
import { CONFIG, DB } from '@tessera/http';
import { RegistrationController, SessionController } from './accounts/accounts.controller.js';
import { ThreepidAccountController, ThreepidRequestTokenController } from './accounts/threepid.controller.js';
import { AccountsService } from './accounts/accounts.service.js';
import { DevicesController } from './accounts/devices.controller.js';
import { DevicesService } from './accounts/devices.service.js';
import { AccessTokensService } from './auth/access-tokens.service.js';
import { AccessTokenGuard } from './auth/auth.guard.js';
import { PasswordCheck } from './auth/password-check.js';
import { RateLimitGuard } from './auth/rate-limit.guard.js';
import { UserInteractiveAuthService } from './auth/user-interactive-auth.service.js';
import { ClientChangesRelay } from './client-changes-relay.js';
import { DeviceListUpdates } from './federation/device-list-updates.js';
import { EduBridge } from './federation/edu-bridge.js';
import { RemoteQueries } from './federation/remote-queries.js';
import { E2eeController } from './e2ee/e2ee.controller.js';
import { KeysService } from './e2ee/keys.service.js';
import { ToDeviceService } from './e2ee/to-device.service.js';
import { KeyBackupController } from './key-backup/key-backup.controller.js';
import { KeyBackupService } from './key-backup/key-backup.service.js';
import { EphemeralController } from './ephemeral/ephemeral.controller.js';
import { LegacyMediaController, MediaController } from './media/media.controller.js';
import { MediaService } from './media/media.service.js';
import { RemoteMediaFetcher } from './media/remote-media.fetcher.js';
import { RemoteMediaService } from './media/remote-media.service.js';
import { PushersController } from './push/pushers.controller.js';
import { PushersService } from './push/pushers.service.js';
import type { PushSenderSettings } from './push/push-sender-settings.js';
import type { UrlPreviewSettings } from './media/url-preview/url-preview-settings.js';
import { EPHEMERAL_STORE, type EphemeralStore } from './ephemeral/ephemeral-store.js';
import { PresenceService } from './ephemeral/presence.service.js';
import { createEphemeralStore } from './ephemeral/redis-ephemeral-store.js';
import { TypingService } from './ephemeral/typing.service.js';
import { CLIENT_API_SETTINGS, clientApiSettings, DEFAULT_MEDIA_SETTINGS, type ClientApiSettings } from './settings.js';
import { StreamChanges } from './stream-changes.js';
import { CLIENT_API_DB } from './tokens.js';
import { AccountDataService } from './user-data/account-data.service.js';
import { IgnoredUsers } from './user-data/ignored-users.js';
import { FiltersService } from './user-data/filters.service.js';
import { ProfileService } from './user-data/profile.service.js';
import { PushRulesController } from './user-data/push-rules.controller.js';
import { PushRulesService } from './user-data/push-rules.service.js';
import { ReceiptsService } from './user-data/receipts.service.js';
import { AccountDataController, CapabilitiesController, ProfileController, ProfileWriteController } from './user-data/user-data.controller.js';
import { WhoisController } from './admin/whois.controller.js';
import { WhoisService } from './admin/whois.service.js';
import { OpenIdController } from './openid/openid.controller.js';
import { OpenIdTokensService } from './openid/openid-tokens.service.js';
import { ThirdPartyController } from './thirdparty/thirdparty.controller.js';
import { VoipController } from './voip/voip.controller.js';
import { RefreshController } from './accounts/refresh.controller.js';
import { RegistrationTokensAdminController, RegistrationTokenValidityController } from './accounts/registration-tokens.controller.js';
import { RegistrationTokensService } from './accounts/registration-tokens.service.js';
import { RefreshTokensService } from './auth/refresh-tokens.service.js';
import { TokenCleanupService } from './auth/token-cleanup.service.js';

/**
 * Optional: settings over those of the HomeserverConfig (YAML: rate_limits, access_tokens,
 * jwt_login, redis.key_prefix, enable_registration, registration_shared_secret). A test
 * provides it globally to set exactly what it tests; absent, the configuration applies.
 */
export const CLIENT_API_SETTINGS_OVERRIDES = Symbol('CLIENT_API_SETTINGS_OVERRIDES');

export interface ClientApiOverrides extends Partial<ClientApiSettings> {
  /** Prefix of client-api's Redis keys (default `tessera:<server name>:`). */
  redisKeyPrefix?: string;
  /** Push sender timings and limits over the defaults (push/push-sender-settings.ts). */
  pushSender?: Partial<PushSenderSettings>;
  /** URL preview limits over the config's (media/url-preview/url-preview-settings.ts). */
  urlPreview?: Partial<UrlPreviewSettings>;
}

/** Closes the ephemeral store (a Redis connection) with the application. */
@Injectable()
class EphemeralStoreCloser implements OnModuleDestroy {
  constructor(@Inject(EPHEMERAL_STORE) private readonly store: EphemeralStore) {}

  async onModuleDestroy(): Promise<void> {
    await this.store.close();
  }
}

const services = [
  AccessTokensService,
  PasswordCheck,
  UserInteractiveAuthService,
  AccountsService,
  DevicesService,
  AccountDataService,
  FiltersService,
  ProfileService,
  PushRulesService,
  PushersService,
  ReceiptsService,
  PresenceService,
  TypingService,
  KeysService,
  ToDeviceService,
  KeyBackupService,
  StreamChanges,
  RemoteQueries,
  DeviceListUpdates,
  AccessTokenGuard,
  RateLimitGuard,
  RefreshTokensService,
  RegistrationTokensService,
  IgnoredUsers,
];

/**
 * Accounts, devices, tokens, user data, ephemeral data and E2EE plumbing of the Client-Server
 * API. Exports its services, the auth guard and the stores' "since" APIs for the rooms/sync
 * module. Its tables are clientApiMigrations (applied by the service runner).
 */
@Module({
  controllers: [
    RegistrationController,
    SessionController,
    DevicesController,
    CapabilitiesController,
    ProfileController,
    ProfileWriteController,
    AccountDataController,
    PushRulesController,
    PushersController,
    EphemeralController,
    E2eeController,
    MediaController,
    LegacyMediaController,
    KeyBackupController,
    VoipController,
    ThirdPartyController,
    OpenIdController,
    WhoisController,
    RefreshController,
    RegistrationTokenValidityController,
    RegistrationTokensAdminController,
    ThreepidRequestTokenController,
    ThreepidAccountController,
  ],
  providers: [
    { provide: CLIENT_API_DB, useExisting: DB },
    {
      provide: CLIENT_API_SETTINGS,
      inject: [CONFIG, { token: CLIENT_API_SETTINGS_OVERRIDES, optional: true }],
      useFactory: (config: HomeserverConfig, overrides?: ClientApiOverrides): ClientApiSettings =>
        clientApiSettings(config.serverName, {
          enableRegistration: config.registration.enableRegistration,
          registrationSharedSecret: config.registration.registrationSharedSecret,
          rateLimit: config.clientApi.rateLimits,
          accessTokenFormat: config.clientApi.accessTokenFormat,
          jwtAccessTokenSecret: config.clientApi.jwtAccessTokenSecret,
          jwtLogin: config.clientApi.jwtLogin,
          media: { ...DEFAULT_MEDIA_SETTINGS, ...config.media },
          ...(config.clientApi.refreshableAccessTokenLifetimeMs !== undefined ? { refreshableAccessTokenLifetimeMs: config.clientApi.refreshableAccessTokenLifetimeMs } : {}),
          refreshTokenLifetimeMs: config.clientApi.refreshTokenLifetimeMs,
          nonrefreshableAccessTokenLifetimeMs: config.clientApi.nonrefreshableAccessTokenLifetimeMs,
          sessionLifetimeMs: config.clientApi.sessionLifetimeMs,
          registrationRequiresToken: config.registration.registrationRequiresToken ?? false,
          ...overrides,
        }),
    },
    {
      provide: EPHEMERAL_STORE,
      inject: [CONFIG, { token: CLIENT_API_SETTINGS_OVERRIDES, optional: true }],
      useFactory: (config: HomeserverConfig, overrides?: ClientApiOverrides): EphemeralStore =>
        createEphemeralStore(config.redis.url, overrides?.redisKeyPrefix ?? config.redis.keyPrefix ?? `tessera:${config.serverName}:`),
    },
    EphemeralStoreCloser,
    EduBridge,
    ClientChangesRelay,
    MediaService,
    RemoteMediaService,
    RemoteMediaFetcher,
    OpenIdTokensService,
    WhoisService,
    TokenCleanupService,
    ...services,
  ],
  exports: [CLIENT_API_DB, CLIENT_API_SETTINGS, EPHEMERAL_STORE, ...services, WhoisService],
})
export class ClientApiCoreModule {}
