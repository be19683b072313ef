/**
 * The homeserver's configuration: what every service process needs to know to start.
 * Read from YAML (snake_case keys, as Synapse's homeserver.yaml), then environment overrides,
 * then validated into this camelCase shape. See loadConfig in load.ts.
 */
export interface ListenerConfig {
  bindAddress: string;
  port: number;
}

export interface TlsConfig {
  certificatePath: string;
  privateKeyPath: string;
}

export interface FederationListenerConfig extends ListenerConfig {
  /** Set when tls_certificate_path and tls_private_key_path are both given: the listener speaks HTTPS. */
  tls?: TlsConfig;
}

export interface OldSigningKey {
  /** Unpadded base64 Ed25519 public key. */
  key: string;
  /** When the key stopped being used (ms since epoch); published in old_verify_keys. */
  expiredTs: number;
}

export interface WellKnownConfig {
  /** Served at /.well-known/matrix/client as m.homeserver.base_url (and m.identity_server when set). */
  client?: { baseUrl: string; identityServerBaseUrl?: string };
  /** Served at /.well-known/matrix/server as m.server: the host[:port] that handles federation. */
  server?: { delegation: string };
  /** Served at /.well-known/matrix/support (spec v1.10+): how to reach the server's admins. */
  support?: WellKnownSupportConfig;
}

/** A way to reach the administrators: a role (m.role.admin, m.role.security or namespaced) and a Matrix id and/or an email. */
export interface SupportContact {
  role: string;
  matrixId?: string;
  emailAddress?: string;
}

/** At least one of a non-empty `contacts` or `supportPage` (the spec's rule). */
export interface WellKnownSupportConfig {
  contacts?: SupportContact[];
  supportPage?: string;
}

export interface RegistrationConfig {
  enableRegistration: boolean;
  /** Shared secret for admin registration (Synapse's register_new_matrix_user). */
  registrationSharedSecret?: string;
  /** Registration needs a token of registration_tokens (Synapse's registration_requires_token; m.login.registration_token). */
  registrationRequiresToken?: boolean;
}

/** A token bucket: `perSecond` tokens added each second, up to `burst`. perSecond 0: no limit. */
export interface RateLimitConfig {
  perSecond: number;
  burst: number;
}

/** org.matrix.login.jwt: a login with a JWT signed by an identity provider (Synapse's jwt_config). */
export interface JwtLoginConfig {
  /** HMAC secret (HS*) or a PEM public key (RS*, ES*, EdDSA). */
  secret: string;
  algorithm: string;
  issuer?: string;
  audience?: string;
  /** Claim holding the localpart (default `sub`). */
  subjectClaim: string;
}

/** Settings of the Client-Server API beyond registration. */
export interface ClientApiConfig {
  /** Per authenticated user and per client IP, on the spec's rate-limited endpoints. */
  rateLimits: { perUser: RateLimitConfig; perIp: RateLimitConfig };
  /** 'opaque' (random, stored hashed) or 'jwt' (HS256 with jwtSecret, revocable on logout). */
  accessTokenFormat: 'opaque' | 'jwt';
  jwtAccessTokenSecret?: string;
  /** Set: the JWT login type is offered. */
  jwtLogin?: JwtLoginConfig;
  /** Lifetime of access tokens issued with a refresh token (Synapse's refreshable_access_token_lifetime; default 5 minutes). */
  refreshableAccessTokenLifetimeMs?: number;
  /** How long a refresh token may be used (Synapse's refresh_token_lifetime; default: until it is used). */
  refreshTokenLifetimeMs?: number;
  /** Lifetime of access tokens issued without a refresh token (Synapse's nonrefreshable_access_token_lifetime; default: no expiry). */
  nonrefreshableAccessTokenLifetimeMs?: number;
  /** Longest a login session lasts, refreshes included (Synapse's session_lifetime; default: no limit). */
  sessionLifetimeMs?: number;
}

/** The content repository (Synapse's max_upload_size and enable_authenticated_media). */
export interface MediaConfig {
  /** Largest accepted upload in bytes (413 M_TOO_LARGE beyond); advertised as m.upload.size. */
  maxUploadSize: number;
  /**
   * true (default, as Synapse): media uploaded now is served only by the authenticated
   * /_matrix/client/v1/media endpoints (the spec's "freeze" of the unauthenticated ones);
   * media uploaded while it was false stays reachable on the deprecated /_matrix/media ones.
   */
  enableAuthenticatedMedia: boolean;
}

/** Push notifications to push gateways (client-api's PushSender). */
export interface PushConfig {
  /**
   * CIDRs a push gateway (a pusher's data.url, chosen by a client) may be reached at although
   * private, loopback or otherwise special-purpose. Empty (default): public addresses only.
   */
  allowedCidrs: string[];
}

/** URL previews (GET /_matrix/client/v1/media/preview_url), Synapse's url_preview_* and max_spider_size. */
export interface UrlPreviewConfig {
  /** false (default, as Synapse): the preview endpoints are not served (404 M_UNRECOGNIZED). */
  enabled: boolean;
  /**
   * CIDRs a previewed URL (or its image, or a redirect) may be fetched from although private,
   * loopback or otherwise special-purpose (url_preview_ip_range_whitelist). Empty: public only.
   */
  allowedCidrs: string[];
  /** Largest page or image fetched for a preview, in bytes (max_spider_size, default 10M). */
  maxSize: number;
  /**
   * CIDRs refused although public (url_preview_ip_range_blacklist), on top of the special-purpose
   * ranges, which are always refused here; allowedCidrs still win. Empty by default.
   */
  blockedCidrs: string[];
  /**
   * URLs not previewed (url_preview_url_blacklist): entries mapping URL components (scheme,
   * netloc, path, params, query, fragment, username, password, hostname, port) to a glob, or a
   * regular expression when it starts with "^"; a URL matching every component of one entry is
   * refused with 403. Empty by default.
   */
  urlBlacklist: Array<Record<string, string>>;
}

export interface HomeserverConfig {
  /** The file the values came from, if one was read (for messages). */
  configFile?: string;
  serverName: string;
  /** Folder for embedded data: PGlite database, and the default signing key location. */
  dataDir: string;
  /** Synapse format `ed25519 <version> <seed>`; generated on first start when missing. */
  signingKeyPath: string;
  /** Previously used keys, published in old_verify_keys of /_matrix/key/v2/server. */
  oldSigningKeys: Record<string, OldSigningKey>;
  /** How long a published key response stays valid (valid_until_ts = now + this). */
  keyValidityMs: number;
  listeners: {
    client: ListenerConfig;
    federation: FederationListenerConfig;
    /** Health listener of services without HTTP routes; port undefined means the service's default. */
    health: { bindAddress: string; port?: number };
  };
  database: {
    /** PostgreSQL connection URL; when absent, PGlite in `dataDir`. */
    url?: string;
    dataDir: string;
  };
  nats: {
    /** NATS server URL; when absent (embedded mode), the in-process bus. */
    url?: string;
    /** Subject prefix, so that deployments and test runs sharing a NATS never collide. */
    prefix: string;
  };
  /** keyPrefix: prefix of every Redis key (default `tessera:<server name>:`), so deployments can share a Redis. */
  redis: { url?: string; keyPrefix?: string };
  wellKnown: WellKnownConfig;
  registration: RegistrationConfig;
  clientApi: ClientApiConfig;
  /** Largest accepted request body in bytes (413 M_TOO_LARGE beyond). */
  maxRequestSize: number;
  media: MediaConfig;
  push: PushConfig;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  urlPreview: UrlPreviewConfig;
}
