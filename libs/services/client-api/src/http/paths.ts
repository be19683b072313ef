/**
 * Client-Server paths under each prefix they are served on: v3 and, as Synapse still serves
 * them for older clients, the legacy r0. (`v1` endpoints are listed with their own prefix.)
 */
export function clientPaths(path: string): string[] {
  return [`/_matrix/client/v3/${path}`, `/_matrix/client/r0/${path}`];
}

export function v1Paths(path: string): string[] {
  return [`/_matrix/client/v1/${path}`];
}

/**
 * The content repository's own hierarchy (`/_matrix/media/...`): v3 and, as Synapse still
 * serves them, r0. (POST /_matrix/media/v1/create is v1 only.)
 */
export function mediaPaths(path: string): string[] {
  return [`/_matrix/media/v3/${path}`, `/_matrix/media/r0/${path}`];
}
