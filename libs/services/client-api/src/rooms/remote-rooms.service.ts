import { Inject, Injectable } from '@nestjs/common';
import {
  BusError, ROOMSERVER_FEDERATION, requestForRoom,
  type BusTransport, type JoinRemoteRequest, type KnockRemoteRequest, type LeaveRemoteRequest, type RemoteMembershipReply,
} from '@tessera/bus';
import { BUS } from '@tessera/http';
import { MatrixError } from '../errors.js';

/**
 * A remote join waits for make_join, send_join and the validation of the whole room state; the
 * room-server gives send_join 5 minutes, so the bus request waits a little longer than that.
 */
const REMOTE_JOIN_TIMEOUT_MS = 310_000;
const REMOTE_MEMBERSHIP_TIMEOUT_MS = 90_000;

/** HTTP status of each errcode the room-server's federation side refuses with. */
const STATUS: Record<string, number> = {
  M_FORBIDDEN: 403,
  M_NOT_FOUND: 404,
  M_BAD_JSON: 400,
  M_INVALID_PARAM: 400,
  M_UNSUPPORTED_ROOM_VERSION: 400,
  M_INCOMPATIBLE_ROOM_VERSION: 400,
  // Restricted rooms: no server asked could vouch for the user (passed through, as the spec asks).
  M_UNABLE_TO_AUTHORISE_JOIN: 400,
  M_UNABLE_TO_GRANT_JOIN: 400,
  // No server given could be used (unreachable, or it sent something unusable).
  M_UNKNOWN: 502,
};

/**
 * Joins, knocks and leaves of rooms this server does not hold: asked of the room-server's
 * federation side (roomserver.federation), which runs make_* / send_* with the given servers.
 */
@Injectable()
export class RemoteRooms {
  constructor(@Inject(BUS) private readonly bus: BusTransport) {}

  join(roomId: string, userId: string, serverNames: string[], content: Record<string, unknown>): Promise<RemoteMembershipReply> {
    return this.call<JoinRemoteRequest>({ op: 'joinRemote', roomId, userId, serverNames, content }, REMOTE_JOIN_TIMEOUT_MS);
  }

  knock(roomId: string, userId: string, serverNames: string[], reason: string | undefined): Promise<RemoteMembershipReply> {
    return this.call<KnockRemoteRequest>({ op: 'knockRemote', roomId, userId, serverNames, ...(reason !== undefined ? { reason } : {}) }, REMOTE_MEMBERSHIP_TIMEOUT_MS);
  }

  leave(roomId: string, userId: string, serverNames: string[], reason: string | undefined): Promise<RemoteMembershipReply> {
    return this.call<LeaveRemoteRequest>({ op: 'leaveRemote', roomId, userId, serverNames, ...(reason !== undefined ? { reason } : {}) }, REMOTE_MEMBERSHIP_TIMEOUT_MS);
  }

  private async call<R extends JoinRemoteRequest | KnockRemoteRequest | LeaveRemoteRequest>(request: R, timeoutMs: number): Promise<RemoteMembershipReply> {
    try {
      return await requestForRoom<R, RemoteMembershipReply>(this.bus, ROOMSERVER_FEDERATION, request.roomId, request, { timeoutMs });
    } catch (err) {
      if (err instanceof BusError && err.code.startsWith('M_')) {
        throw new MatrixError(STATUS[err.code] ?? 500, err.code, err.message);
      }
      if (err instanceof BusError) {
        throw new MatrixError(503, 'M_UNKNOWN', `the room service did not answer the ${request.op.replace('Remote', '')} of ${request.roomId} (${err.code}); try again`);
      }
      throw err;
    }
  }
}
