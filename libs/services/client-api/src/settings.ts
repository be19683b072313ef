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
    ...overrides,
  };
}
