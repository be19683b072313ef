/**
 * What the Client-Server API asks of other servers directly (Server-Server API "Querying for
 * information", "End-to-End Encryption"): room aliases (query/directory), profiles
 * (query/profile), device keys (user/keys/query) and one-time keys (user/keys/claim). Joins,
 * knocks and leaves of remote rooms go through room-server instead (see RemoteRooms).
 *
 * The outbound client is made on first use from the environment (FEDERATION_CA_FILE,
 * FEDERATION_ALLOWED_CIDRS, ...; see @tessera/federation-client from-environment.ts), so a
 * client-api that never talks to another server never reads those settings.
 */
import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import type { HomeserverConfig, LoadedSigningKeys } from '@tessera/config';
import { createFederationClient, FederationError, readFederationEnvironment, type FederationClient } from '@tessera/federation-client';
import { CONFIG, SIGNING_KEYS } from '@tessera/http';
import { isValidRoomId, isValidServerName } from '@tessera/protocol';
import { MatrixError } from '../errors.js';
import { isPlainObject } from '../validation.js';

type Json = Record<string, unknown>;

/** How long a profile or alias lookup may take (Synapse waits 10 s for these queries too). */
const QUERY_TIMEOUT_MS = 10_000;
/** Via servers asked for one room's hierarchy before giving up on it. */
const HIERARCHY_SERVERS_TRIED = 3;

@Injectable()
export class RemoteQueries implements OnModuleDestroy {
  private client: FederationClient | undefined;

  constructor(
    @Inject(CONFIG) private readonly config: HomeserverConfig,
    @Inject(SIGNING_KEYS) private readonly keys: LoadedSigningKeys,
  ) {}

  /** The client-api's one outbound federation client (its connection pool), made on first use; media fetches use it too. */
  get federation(): FederationClient {
    this.client ??= createFederationClient(this.config.serverName, this.keys.current, readFederationEnvironment());
    return this.client;
  }

  onModuleDestroy(): void {
    this.client?.close();
  }

  /** GET /_matrix/federation/v1/query/directory on the alias's server. */
  async roomAlias(alias: string, server: string): Promise<{ room_id: string; servers: string[] }> {
    const answer = await this.ask(server, `look up ${alias}`, () =>
      this.federation.get<unknown>(server, '/_matrix/federation/v1/query/directory', { query: { room_alias: alias }, timeoutMs: QUERY_TIMEOUT_MS }));
    if (!isPlainObject(answer) || typeof answer.room_id !== 'string' || !isValidRoomId(answer.room_id)) {
      throw badGateway(`${server} answered the lookup of ${alias} without a valid room_id`);
    }
    const servers = Array.isArray(answer.servers) ? answer.servers.filter((s): s is string => typeof s === 'string' && isValidServerName(s)) : [];
    // The alias's own server knows the room: it is a hint even when it did not list itself.
    return { room_id: answer.room_id, servers: servers.includes(server) ? servers : [...servers, server] };
  }

  /** GET /_matrix/federation/v1/query/profile on the user's server (one field, or all). */
  async profile(userId: string, server: string, field?: string): Promise<Json> {
    const answer = await this.ask(server, `fetch the profile of ${userId}`, () =>
      this.federation.get<unknown>(server, '/_matrix/federation/v1/query/profile', { query: { user_id: userId, field }, timeoutMs: QUERY_TIMEOUT_MS }));
    if (!isPlainObject(answer)) throw badGateway(`${server} answered the profile query of ${userId} with something other than an object`);
    return answer;
  }

  /**
   * The public room directory of another server: GET /_matrix/federation/v1/publicRooms, or
   * POST with the search filter. The answer is passed on once its shape is checked.
   */
  async publicRooms(server: string, query: { limit?: number; since?: string; searchTerm?: string }): Promise<Json> {
    const answer = await this.ask(server, `fetch the public rooms of ${server}`, () =>
      query.searchTerm === undefined
        ? this.federation.get<unknown>(server, '/_matrix/federation/v1/publicRooms', { query: { limit: query.limit, since: query.since }, timeoutMs: QUERY_TIMEOUT_MS })
        : this.federation.post<unknown>(server, '/_matrix/federation/v1/publicRooms', {
          ...(query.limit !== undefined ? { limit: query.limit } : {}),
          ...(query.since !== undefined ? { since: query.since } : {}),
          filter: { generic_search_term: query.searchTerm },
        }, { timeoutMs: QUERY_TIMEOUT_MS }));
    if (!isPlainObject(answer) || !Array.isArray(answer.chunk)) throw badGateway(`${server} answered its public rooms without a "chunk" list`);
    const result: Json = { chunk: answer.chunk.filter((room) => isPlainObject(room) && typeof room.room_id === 'string') };
    for (const key of ['next_batch', 'prev_batch'] as const) if (typeof answer[key] === 'string') result[key] = answer[key];
    if (typeof answer.total_room_count_estimate === 'number') result.total_room_count_estimate = answer.total_room_count_estimate;
    return result;
  }

  /**
   * GET /_matrix/federation/v1/hierarchy/{roomId} on each server in turn until one answers
   * (spec "Spaces": the via servers of the m.space.child event). Undefined when none could;
   * the shape is checked, entries without a room_id dropped.
   */
  async hierarchy(roomId: string, servers: readonly string[], suggestedOnly: boolean): Promise<{ room: Json; children: Json[]; inaccessibleChildren: string[] } | undefined> {
    for (const server of servers.slice(0, HIERARCHY_SERVERS_TRIED)) {
      if (!isValidServerName(server)) continue;
      try {
        const answer = await this.federation.get<unknown>(server, `/_matrix/federation/v1/hierarchy/${encodeURIComponent(roomId)}`, {
          query: { suggested_only: suggestedOnly ? 'true' : 'false' },
          timeoutMs: QUERY_TIMEOUT_MS,
        });
        if (!isPlainObject(answer) || !isPlainObject(answer.room) || answer.room.room_id !== roomId) continue;
        const children = Array.isArray(answer.children) ? answer.children.filter((c): c is Json => isPlainObject(c) && typeof c.room_id === 'string') : [];
        const inaccessibleChildren = Array.isArray(answer.inaccessible_children) ? answer.inaccessible_children.filter((c): c is string => typeof c === 'string') : [];
        return { room: answer.room, children, inaccessibleChildren };
      } catch {
        // The next server may know the room.
      }
    }
    return undefined;
  }

  /** POST /_matrix/federation/v1/user/keys/query; failures are thrown as FederationError (the caller records them). */
  keysQuery(server: string, deviceKeys: Record<string, string[]>, timeoutMs: number): Promise<unknown> {
    return this.federation.post<unknown>(server, '/_matrix/federation/v1/user/keys/query', { device_keys: deviceKeys }, { timeoutMs });
  }

  /** POST /_matrix/federation/v1/user/keys/claim; failures are thrown as FederationError. */
  keysClaim(server: string, oneTimeKeys: Record<string, Record<string, string>>, timeoutMs: number): Promise<unknown> {
    return this.federation.post<unknown>(server, '/_matrix/federation/v1/user/keys/claim', { one_time_keys: oneTimeKeys }, { timeoutMs });
  }

  private async ask<T>(server: string, what: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw remoteFailure(err, server, what);
    }
  }
}

/**
 * A failed request to another server as the client's error: the remote's own refusal (4xx with
 * its errcode, as Synapse passes it on), else 502 M_UNKNOWN saying which server failed and why.
 */
export function remoteFailure(err: unknown, server: string, what: string): MatrixError {
  if (!(err instanceof FederationError)) return badGateway(`Could not ${what}: ${(err as Error)?.message ?? String(err)}`);
  if (err.kind === 'http' && err.status !== undefined && err.status >= 400 && err.status < 500) {
    const errcode = err.errcode ?? (err.status === 404 ? 'M_NOT_FOUND' : err.status === 403 ? 'M_FORBIDDEN' : 'M_UNKNOWN');
    return new MatrixError(err.status, errcode, `Could not ${what}: ${err.message}`);
  }
  const why = err.kind === 'timeout' ? 'it did not answer in time' : err.kind === 'http' ? `it answered HTTP ${err.status}` : err.message;
  return badGateway(`Could not ${what}: the server ${server} could not be reached (${why})`);
}

/** The `failures` entry of /keys/query and /keys/claim for an unreachable server (Synapse's shape). */
export function keysFailure(err: unknown): Json {
  if (err instanceof FederationError && err.kind === 'http' && err.status !== undefined) return { status: err.status, message: err.message };
  return { status: 503, message: (err as Error)?.message ?? String(err) };
}

function badGateway(message: string): MatrixError {
  return new MatrixError(502, 'M_UNKNOWN', message);
}
