import { Inject, Injectable } from '@nestjs/common';
import {
  BusError, requestForRoom, ROOMSERVER_INPUT,
  type BusTransport, type CreateRoomReply, type CreateRoomRequest, type EventIdReply, type MembershipRequest, type RedactRequest, type SendEventRequest,
} from '@tessera/bus';
import { BUS } from '@tessera/http';
import { MatrixError } from '../errors.js';

/** HTTP status of each errcode room-server refuses with. */
const STATUS: Record<string, number> = {
  M_FORBIDDEN: 403,
  M_NOT_FOUND: 404,
  M_BAD_JSON: 400,
  M_INVALID_PARAM: 400,
  M_MISSING_PARAM: 400,
  M_TOO_LARGE: 413,
  M_UNSUPPORTED_ROOM_VERSION: 400,
  M_ROOM_IN_USE: 400,
  M_BAD_ALIAS: 400,
  M_UNRECOGNIZED: 400,
  M_LIMIT_EXCEEDED: 429,
};

/** Room changes go to room-server on roomserver.input; its refusals come back as Matrix errors. */
@Injectable()
export class RoomInput {
  /** Requests waiting for the next event-loop turn (see sameTurnAsOthers). */
  private waiting: Array<() => void> = [];

  constructor(@Inject(BUS) private readonly bus: BusTransport) {}

  /**
   * Resolves in the event loop's next check phase, together with every request that arrived
   * before it. On the embedded runtime (PGlite, in-process bus) a request's whole path to the
   * commit and back runs in microtasks, which Node drains after each socket's callback: without
   * this, the HTTP requests read in one loop turn reached room-server one at a time and every
   * send was its own group commit (measured: at most 1 roomserver.input request in flight with
   * 50 concurrent senders). Issued together, they are decided and committed together.
   * Elsewhere (NATS, PostgreSQL) it costs one setImmediate hop.
   */
  private sameTurnAsOthers(): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      if (this.waiting.length > 1) return;
      setImmediate(() => {
        const ready = this.waiting;
        this.waiting = [];
        for (const go of ready) go();
      });
    });
  }

  createRoom(request: Omit<CreateRoomRequest, 'op'>): Promise<CreateRoomReply> {
    return this.call({ op: 'createRoom', ...request }) as Promise<CreateRoomReply>;
  }

  membership(request: Omit<MembershipRequest, 'op'>): Promise<EventIdReply> {
    return this.call({ op: 'membership', ...request }) as Promise<EventIdReply>;
  }

  sendEvent(request: Omit<SendEventRequest, 'op'>): Promise<EventIdReply> {
    return this.call({ op: 'sendEvent', ...request }) as Promise<EventIdReply>;
  }

  redact(request: Omit<RedactRequest, 'op'>): Promise<EventIdReply> {
    return this.call({ op: 'redact', ...request }) as Promise<EventIdReply>;
  }

  private async call(request: CreateRoomRequest | MembershipRequest | SendEventRequest | RedactRequest): Promise<unknown> {
    await this.sameTurnAsOthers();
    try {
      // To the replica that owns the room's partition (its view of the room is current); createRoom to any.
      return await requestForRoom(this.bus, ROOMSERVER_INPUT, 'roomId' in request ? request.roomId : undefined, request, { timeoutMs: 30_000 });
    } catch (err) {
      if (err instanceof BusError && err.code.startsWith('M_')) {
        throw new MatrixError(STATUS[err.code] ?? 500, err.code, err.message);
      }
      if (err instanceof BusError) {
        // The room service is down or overloaded: the client may retry.
        throw new MatrixError(503, 'M_UNKNOWN', `the room service did not answer (${err.code}); try again`);
      }
      throw err;
    }
  }
}
