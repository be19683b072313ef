/** Injection tokens of client-api's providers (no decorator metadata under tsx: explicit @Inject). */
export const CLIENT_API_DB = Symbol('CLIENT_API_DB');
