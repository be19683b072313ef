/**
 * PUT /_matrix/federation/v1/send/{txnId}: a transaction of PDUs and EDUs from another server.
 * PDUs are checked in order per room (format, signatures, hashes: a hash mismatch continues
 * with the redacted event), then decided by the room-server (auth against their auth events
 * and the state before them, soft failure against the current state; missing prev_events are
 * fetched there). EDUs go on the bus for client-api. The answer per (origin, txnId) is stored:
 * a retried transaction gets it again and is not applied twice.
 */
import { Controller, HttpCode, Inject, Param, Put, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { getRoomVersion, isKnownRoomVersion, type Pdu } from '@tessera/protocol';
import {
  EDU_INBOUND, ROOMSERVER_FEDERATION, requestForRoom,
  type BusTransport, type InboundEdu, type InputFederatedPdusRequest, type InputPdusReply,
} from '@tessera/bus';
import { BUS, DB, LOGGER, MatrixError } from '@tessera/http';
import { getInboundTxnResponse, getRoom, isRoomHeld, saveInboundTxnResponse, type Db } from '@tessera/storage';
import type { Logger } from 'pino';
import { FederationContext } from './federation-context.js';
import { checkServerAcl } from './room-access.js';

export const MAX_PDUS_PER_TXN = 50;
export const MAX_EDUS_PER_TXN = 100;

function isObject(v: unknown): v is Record<string, any> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

@Controller('_matrix/federation/v1/send')
export class TransactionsController {
  /** Transactions being applied now, so that a concurrent retry waits for the first. */
  private readonly inflight = new Map<string, Promise<Record<string, unknown>>>();

  constructor(
    @Inject(FederationContext) private readonly ctx: FederationContext,
    @Inject(DB) private readonly db: Db,
    @Inject(BUS) private readonly bus: BusTransport,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  @Put(':txnId')
  @HttpCode(200)
  async send(@Req() req: FastifyRequest, @Param('txnId') txnId: string) {
    const origin = await this.ctx.authenticate(req);
    const body = req.body;
    if (body === undefined) throw new MatrixError(400, 'M_NOT_JSON', 'the transaction must be a JSON object');
    if (!isObject(body)) throw new MatrixError(400, 'M_BAD_JSON', 'the transaction must be a JSON object');
    // origin and origin_server_ts are required (spec, Transaction). A missing or null pdus is
    // read as an empty list: a transaction of EDUs only is sent so by some servers (a nil list).
    if (typeof body.origin !== 'string') throw new MatrixError(400, 'M_BAD_JSON', 'origin must be the sending server name');
    if (!Number.isSafeInteger(body.origin_server_ts)) throw new MatrixError(400, 'M_BAD_JSON', 'origin_server_ts must be an integer');
    const pdus = body.pdus ?? [];
    const edus = body.edus ?? [];
    if (!Array.isArray(pdus)) throw new MatrixError(400, 'M_BAD_JSON', 'pdus must be a list');
    if (!Array.isArray(edus)) throw new MatrixError(400, 'M_BAD_JSON', 'edus must be a list');
    if (pdus.length > MAX_PDUS_PER_TXN || edus.length > MAX_EDUS_PER_TXN) {
      throw new MatrixError(400, 'M_BAD_JSON', `a transaction holds at most ${MAX_PDUS_PER_TXN} PDUs and ${MAX_EDUS_PER_TXN} EDUs (got ${pdus.length} and ${edus.length})`);
    }
    if (body.origin !== origin) {
      throw new MatrixError(400, 'M_BAD_JSON', `the transaction's origin ${body.origin} is not the authenticated origin ${origin}`);
    }
    const key = `${origin}\u0000${txnId}`;
    const running = this.inflight.get(key);
    if (running) return running;
    const done = await getInboundTxnResponse(this.db, origin, txnId);
    if (done) return done;
    const work = this.apply(origin, txnId, pdus, edus).finally(() => this.inflight.delete(key));
    this.inflight.set(key, work);
    return work;
  }

  private async apply(origin: string, txnId: string, pdus: unknown[], edus: unknown[]): Promise<Record<string, unknown>> {
    const results: Record<string, { error?: string }> = {};
    // Group by room, keeping the order within each room.
    const byRoom = new Map<string, unknown[]>();
    for (const pdu of pdus) {
      const roomId = isObject(pdu) && typeof pdu.room_id === 'string' ? pdu.room_id : undefined;
      if (!roomId) {
        this.logger.info({ origin, txnId }, 'dropped a PDU without room_id');
        continue;
      }
      const list = byRoom.get(roomId) ?? [];
      list.push(pdu);
      byRoom.set(roomId, list);
    }
    for (const [roomId, roomPdus] of byRoom) {
      await this.applyRoom(origin, roomId, roomPdus, results);
    }
    for (const edu of edus) {
      if (!isObject(edu) || typeof edu.edu_type !== 'string' || !isObject(edu.content)) continue;
      const content = await this.withoutDeniedRooms(origin, edu.edu_type, edu.content);
      if (!content) continue;
      const inbound: InboundEdu = { origin, eduType: edu.edu_type, content, receivedTs: Date.now() };
      await this.bus.publish(EDU_INBOUND, inbound).catch((err: unknown) => this.logger.warn({ err, origin }, 'publishing an inbound EDU failed'));
    }
    const response = { pdus: results };
    await saveInboundTxnResponse(this.db, origin, txnId, response);
    return response;
  }

  /**
   * Typing notices and receipts belong to rooms, and a room's server ACL applies to them as to
   * its PDUs (spec, Server ACLs; MSC4163): a denied server's typing notice is dropped, and its
   * receipts for the rooms that deny it. Undefined when nothing is left.
   */
  private async withoutDeniedRooms(origin: string, eduType: string, content: Record<string, any>): Promise<Record<string, any> | undefined> {
    const allowed = async (roomId: unknown) => {
      if (typeof roomId !== 'string') return true; // malformed: the receiving service drops it
      try {
        await checkServerAcl(this.db, roomId, origin);
        return true;
      } catch (err) {
        if (err instanceof MatrixError) return false;
        throw err;
      }
    };
    if (eduType === 'm.typing') return (await allowed(content.room_id)) ? content : undefined;
    if (eduType !== 'm.receipt') return content;
    const kept: Record<string, unknown> = {};
    for (const [roomId, receipts] of Object.entries(content)) if (await allowed(roomId)) kept[roomId] = receipts;
    return Object.keys(kept).length > 0 ? kept : undefined;
  }

  private async applyRoom(origin: string, roomId: string, pdus: unknown[], results: Record<string, { error?: string }>): Promise<void> {
    const idOf = (p: unknown, i: number) => (isObject(p) && typeof p.event_id === 'string' ? p.event_id : `${roomId}#${i}`);
    const refuse = (error: string) => pdus.forEach((p, i) => (results[idOf(p, i)] = { error }));
    const room = await getRoom(this.db, roomId);
    if (!room || !isKnownRoomVersion(room.roomVersion)) return refuse(`this server is not in room ${roomId}`);
    if (!(await isRoomHeld(this.db, roomId))) {
      // A room known here only by an invite: the inviter may rescind it (room-server decides).
      const aboutLocalUser = (p: unknown) => isObject(p) && p.type === 'm.room.member' && typeof p.state_key === 'string'
        && p.state_key.endsWith(`:${this.ctx.serverName}`);
      if (!pdus.some(aboutLocalUser)) return refuse(`this server is not in room ${roomId}`);
    }
    try {
      await checkServerAcl(this.db, roomId, origin);
    } catch (err) {
      if (err instanceof MatrixError) return refuse(err.message);
      throw err;
    }
    const rv = getRoomVersion(room.roomVersion);
    const checks = await this.ctx.verifier.verifyAll(pdus, rv);
    const accepted: Pdu[] = [];
    checks.forEach((c, i) => {
      if (c.ok) accepted.push(c.pdu);
      else results[c.eventId ?? idOf(pdus[i], i)] = { error: c.error };
    });
    if (accepted.length === 0) return;
    const request: InputFederatedPdusRequest = { op: 'inputFederatedPdus', roomId, roomVersion: rv.id, origin, pdus: accepted };
    const reply = await requestForRoom<InputFederatedPdusRequest, InputPdusReply>(this.bus, ROOMSERVER_FEDERATION, roomId, request, { timeoutMs: 120_000 });
    for (const [eventId, r] of Object.entries(reply.results)) {
      results[eventId] = r.accepted ? {} : { error: r.error ?? 'rejected' };
    }
  }
}
