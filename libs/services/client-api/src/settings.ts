/**
 * What client-api needs to know beyond the shared HomeserverConfig: registration, login
 * methods, token format and rate limits. Built from the HomeserverConfig plus the
 * client-api specific options (defaults below), so tests can set exactly what they test.
 */
export interface RateLimitSettings {
  /** Tokens added per second; 0 turns the limit off. */
  perSecond: number;
  /** Bucket size: requests allowed in a burst. */
  burst: number;
}

export interface JwtLoginSettings {
  /** HMAC secret (HS*) or a PEM public key (RS*, ES*, EdDSA) verifying org.matrix.login.jwt tokens. */
  secret: string;
  algorithm: string;
  /** When set, the token's `iss` must equal it. */
  issuer?: string;
  /** When set, the token's `aud` must contain it. */
  audience?: string;
  /** Claim holding the localpart (Synapse: `sub`). */
  subjectClaim: string;
}

/** The content repository (see media/). */
export interface MediaSettings {
  /** Largest upload in bytes (413 M_TOO_LARGE beyond); m.upload.size of /media/config. */
  maxUploadSize: number;
  /** New media is served only by the authenticated endpoints (Synapse's enable_authenticated_media). */
  enableAuthenticatedMedia: boolean;
  /** How long a media id from POST /media/v1/create waits for its upload (spec: 24 hours recommended). */
  unusedExpiryMs: number;
  /** Pending (created, not uploaded, unexpired) media ids a user may hold (Synapse's max_pending_media_uploads). */
  maxPendingUploads: number;
}

export const DEFAULT_MEDIA_SETTINGS: Readonly<MediaSettings> = {
  maxUploadSize: 50 * 1024 * 1024,
  enableAuthenticatedMedia: true,
  unusedExpiryMs: 24 * 60 * 60 * 1000,
  maxPendingUploads: 5,
};

export interface ClientApiSettings {
  serverName: string;
  enableRegistration: boolean;
  registrationSharedSecret?: string;
  /** Regular expressions of user ids reserved for application services (M_EXCLUSIVE). */
  exclusiveUserNamespaces: string[];
  jwtLogin?: JwtLoginSettings;
  /** 'opaque' (random, stored hashed) or 'jwt' (signed with jwtAccessTokenSecret, revocable). */
  accessTokenFormat: 'opaque' | 'jwt';
  jwtAccessTokenSecret?: string;
  /** Lifetime of m.login.token tokens from /v1/login/get_token. */
  loginTokenLifetimeMs: number;
  rateLimit: { perUser: RateLimitSettings; perIp: RateLimitSettings };
  /** scrypt cost N (a power of two); parameters are stored with each hash. */
  passwordScryptCost: number;
  media: MediaSettings;
  /** Lifetime of access tokens issued with a refresh token (login/register `refresh_token: true`, /refresh). */
  refreshableAccessTokenLifetimeMs: number;
  /** How long a refresh token may be used (Synapse's refresh_token_lifetime); unset: until used. */
  refreshTokenLifetimeMs?: number;
  /** Lifetime of access tokens issued without a refresh token (Synapse's nonrefreshable_access_token_lifetime); unset: no expiry. */
  nonrefreshableAccessTokenLifetimeMs?: number;
  /** Longest a login session lasts, refreshes included (Synapse's session_lifetime); unset: no limit. */
  sessionLifetimeMs?: number;
  /**
   * How long expired access and refresh tokens stay on record (auth/token-cleanup.service.ts):
   * meanwhile they are answered as a soft logout (soft_logout: true), then as unknown tokens.
   */
  expiredTokenRetentionMs: number;
  /** How often the cleanup of expired tokens runs (0: never). */
  tokenCleanupIntervalMs: number;
  /** POST /register needs the m.login.registration_token stage (Synapse's registration_requires_token). */
  registrationRequiresToken: boolean;
}

export const CLIENT_API_SETTINGS = Symbol('CLIENT_API_SETTINGS');

export function clientApiSettings(serverName: string, overrides: Partial<ClientApiSettings> = {}): ClientApiSettings {
  return {
    serverName,
    enableRegistration: false,
    exclusiveUserNamespaces: [],
    accessTokenFormat: 'opaque',
    loginTokenLifetimeMs: 120_000,
    rateLimit: { perUser: { perSecond: 10, burst: 50 }, perIp: { perSecond: 20, burst: 100 } },
    passwordScryptCost: 16384,
    media: DEFAULT_MEDIA_SETTINGS,
    refreshableAccessTokenLifetimeMs: 5 * 60_000,
    expiredTokenRetentionMs: 7 * 24 * 60 * 60_000,
    tokenCleanupIntervalMs: 10 * 60_000,
    registrationRequiresToken: false,
    ...overrides,
  };
}
