/**
 * Injection tokens of what every service is given by its process (see runtime.ts). Services
 * receive these through `@Inject(TOKEN)`, never by importing a singleton.
 */
export const CONFIG = Symbol('tessera:config'); // HomeserverConfig
export const SIGNING_KEYS = Symbol('tessera:signing-keys'); // LoadedSigningKeys
export const DB = Symbol('tessera:db'); // Db
export const BUS = Symbol('tessera:bus'); // BusTransport
export const LOGGER = Symbol('tessera:logger'); // pino Logger
export const RUNTIME = Symbol('tessera:runtime'); // ServiceRuntime
