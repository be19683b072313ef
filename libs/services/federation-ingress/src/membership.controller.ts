/**
 * Membership handshakes with other servers' users: make_join/send_join, make_leave/send_leave,
 * make_knock/send_knock, and invites of our users (v2, and the deprecated v1 forms older servers
 * still send). Templates are built from the room's current state and extremities; the signed
 * events are decided by the room-server like any federated PDU. Restricted rooms: one of our
 * users vouches for the join in the template, and this server signs the join it receives.
 */
import { Body, Controller, Get, HttpCode, Inject, Param, Put, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import {
  AuthError, authorize, authTypesForEvent, checkContentHash, getRoomVersion, hashAndSignEvent, isKnownRoomVersion, pduToRoomEvent, stateKey,
  strippedStateOf, type Pdu, type RoomEvent, type RoomVersion,
} from '@tessera/protocol';
import {
  BusError, ROOMSERVER_FEDERATION, requestForRoom,
  type BusTransport, type InputFederatedPdusRequest, type InputPdusReply, type ReceiveInviteRequest,
} from '@tessera/bus';
import { BUS, DB, MatrixError } from '@tessera/http';
import {
  getAuthChainIds, getCurrentState, getCurrentStateEvents, getEvents, getForwardExtremities, getRoom, getRoomMembers, getStateBeforeEvent, isRoomHeld,
  type Db, type StoredEvent, type StoredRoom,
} from '@tessera/storage';
import { FederationContext } from './federation-context.js';
import { checkServerAcl, heldRoom } from './room-access.js';
import { restrictedJoinDecision, restrictedJoinRefusal } from './restricted-join.js';
import { servedPdu } from './room-history.controller.js';

const MAX_PREV_EVENTS = 20;
const STRIPPED_STATE_TYPES = ['m.room.create', 'm.room.join_rules', 'm.room.name', 'm.room.avatar', 'm.room.canonical_alias', 'm.room.encryption', 'm.room.topic'];

type Kind = 'join' | 'leave' | 'knock';

function domainOf(id: string): string {
  return id.slice(id.indexOf(':') + 1);
}

function isObject(v: unknown): v is Record<string, any> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** No body is not JSON; JSON that is not an object is JSON of the wrong shape. */
function notAnObject(body: unknown): MatrixError {
  return body === undefined
    ? new MatrixError(400, 'M_NOT_JSON', 'the body must be a JSON object')
    : new MatrixError(400, 'M_BAD_JSON', 'the body must be a JSON object');
}

@Controller('_matrix/federation')
export class MembershipController {
  constructor(
    @Inject(FederationContext) private readonly ctx: FederationContext,
    @Inject(DB) private readonly db: Db,
    @Inject(BUS) private readonly bus: BusTransport,
  ) {}

  // ---------------------------------------------------------------------------------------------
  // make_*

  @Get('v1/make_join/:roomId/:userId')
  makeJoin(@Req() req: FastifyRequest, @Param('roomId') roomId: string, @Param('userId') userId: string, @Query('ver') ver: unknown) {
    return this.make(req, 'join', roomId, userId, ver ?? ['1']);
  }

  @Get('v1/make_leave/:roomId/:userId')
  makeLeave(@Req() req: FastifyRequest, @Param('roomId') roomId: string, @Param('userId') userId: string) {
    return this.make(req, 'leave', roomId, userId, undefined);
  }

  @Get('v1/make_knock/:roomId/:userId')
  makeKnock(@Req() req: FastifyRequest, @Param('roomId') roomId: string, @Param('userId') userId: string, @Query('ver') ver: unknown) {
    return this.make(req, 'knock', roomId, userId, ver ?? []);
  }

  private async make(req: FastifyRequest, kind: Kind, roomId: string, userId: string, ver: unknown) {
    const origin = await this.ctx.authenticate(req);
    if (domainOf(userId) !== origin) throw new MatrixError(403, 'M_FORBIDDEN', `${origin} may not act for ${userId}`);
    const room = await heldRoom(this.db, roomId);
    await checkServerAcl(this.db, roomId, origin);
    if (ver !== undefined) {
      const versions = Array.isArray(ver) ? ver : [ver];
      if (!versions.includes(room.roomVersion)) {
        throw new MatrixError(400, 'M_INCOMPATIBLE_ROOM_VERSION', `room ${roomId} has version ${room.roomVersion}, which the joining server does not support`, { room_version: room.roomVersion });
      }
    }
    const rv = getRoomVersion(room.roomVersion);
    const event = await this.template(room, rv, userId, kind);
    return { event, room_version: room.roomVersion };
  }

  /** The unsigned membership event the remote server completes and signs. 403 when the rules would refuse it now. */
  private async template(room: StoredRoom, rv: RoomVersion, userId: string, kind: Kind): Promise<Record<string, unknown>> {
    const state = new Map((await getCurrentState(this.db, room.roomId)).map(([t, k, id]) => [stateKey(t, k), id]));
    const extremities = (await getForwardExtremities(this.db, room.roomId)).slice(0, MAX_PREV_EVENTS);
    const content: Record<string, unknown> = { membership: kind };
    if (kind === 'join') {
      const decision = await restrictedJoinDecision(this.db, this.ctx.serverName, rv, room.roomId, userId);
      const refusal = restrictedJoinRefusal(decision, room.roomId, userId);
      if (refusal) throw refusal;
      if (decision.outcome === 'authorised') content.join_authorised_via_users_server = decision.authoriser;
    }
    const authIds = authTypesForEvent({ type: 'm.room.member', sender: userId, state_key: userId, content }, rv)
      .map(([t, k]) => state.get(stateKey(t, k)))
      .filter((id): id is string => id !== undefined);
    const stored = await getEvents(this.db, [...extremities.map((e) => e.eventId), ...authIds, ...state.values()]);
    const edge = (id: string) => (rv.eventIdFormat === 'v1' ? [id, { sha256: stored.get(id)?.json.hashes?.sha256 ?? '' }] : id);
    const template: Record<string, unknown> = {
      room_id: room.roomId,
      sender: userId,
      type: 'm.room.member',
      state_key: userId,
      content,
      depth: Math.max(0, ...extremities.map((e) => e.depth)) + 1,
      prev_events: extremities.map((e) => edge(e.eventId)),
      auth_events: authIds.map(edge),
      origin_server_ts: Date.now(),
    };
    if (!rv.redaction.v11Rules) template.origin = this.ctx.serverName;
    // Would the room accept it now? (A refusal here spares the remote a doomed send_*.)
    const toEvent = (e: StoredEvent) => ({ ...pduToRoomEvent(e.json as Pdu, rv), event_id: e.eventId });
    const lookup = (t: string, k: string): RoomEvent | undefined => {
      const id = state.get(stateKey(t, k));
      const e = id === undefined ? undefined : stored.get(id);
      return e ? toEvent(e) : undefined;
    };
    try {
      // The authoriser's signature is added at send_join; here only the rest of the rules count.
      authorize({ ...(template as unknown as RoomEvent), event_id: '$template', prev_events: extremities.map((e) => e.eventId), auth_events: authIds }, lookup, rv, {
        isSignedByServer: () => true,
      });
    } catch (err) {
      if (err instanceof AuthError) throw new MatrixError(403, 'M_FORBIDDEN', `${userId} may not ${kind} room ${room.roomId}: ${err.message}`);
      throw err;
    }
    return template;
  }

  // ---------------------------------------------------------------------------------------------
  // send_*

  @Put('v2/send_join/:roomId/:eventId')
  @HttpCode(200)
  sendJoin(@Req() req: FastifyRequest, @Param('roomId') roomId: string, @Param('eventId') eventId: string, @Query('omit_members') omit: unknown) {
    return this.join(req, roomId, eventId, omit === 'true');
  }

  /** Deprecated v1: the v2 answer, wrapped as [200, body] (the spec's v1 response). */
  @Put('v1/send_join/:roomId/:eventId')
  @HttpCode(200)
  async sendJoinV1(@Req() req: FastifyRequest, @Param('roomId') roomId: string, @Param('eventId') eventId: string) {
    return [200, await this.join(req, roomId, eventId)];
  }

  /**
   * The state before the join and its auth chain. With omit_members (a joining server that can
   * take a partial state, spec send_join v2): the membership events are left out but those of
   * the room's heroes when it has neither name nor canonical alias (the members a client would
   * name it by), and the auth chain leaves out what `state` already holds.
   */
  private async join(req: FastifyRequest, roomId: string, eventId: string, omitMembers = false) {
    const { room, pdu } = await this.receiveMembership(req, 'join', roomId, eventId);
    let state = (await getStateBeforeEvent(this.db, eventId)) ?? [];
    if (omitMembers) {
      const named = state.some(([type, key]) => (type === 'm.room.name' || type === 'm.room.canonical_alias') && key === '');
      const heroes = named ? new Set<string>() : await this.heroes(state, pdu.sender);
      state = state.filter(([type, key]) => type !== 'm.room.member' || heroes.has(key));
    }
    const stateIds = state.map((t) => t[2]);
    const inState = new Set(stateIds);
    const authIds = (await getAuthChainIds(this.db, [...stateIds, eventId])).filter((id) => !omitMembers || !inState.has(id));
    const events = await getEvents(this.db, [...stateIds, ...authIds]);
    const pick = (ids: string[]) => ids.map((id) => events.get(id)).filter((e): e is StoredEvent => e !== undefined).map(servedPdu);
    return {
      origin: this.ctx.serverName,
      members_omitted: omitMembers,
      servers_in_room: await this.serversBeforeJoin(room.roomId, pdu.sender),
      state: pick(stateIds),
      auth_chain: pick(authIds),
      event: pdu,
    };
  }

  /**
   * The servers with a member joined before the join (spec, send_join `servers_in_room`): the
   * joining server only when another of its users is joined. Complement's partial-state
   * send_join test expects exactly the resident servers.
   */
  private async serversBeforeJoin(roomId: string, joiner: string): Promise<string[]> {
    const members = await getRoomMembers(this.db, roomId, 'join');
    return [...new Set(members.filter((u) => u !== joiner).map(domainOf))].sort();
  }

  /**
   * m.heroes as /sync computes them: up to 5 joined or invited members other than `userId`, by
   * user id (left members when there are none).
   */
  private async heroes(state: ReadonlyArray<readonly [string, string, string]>, userId: string): Promise<Set<string>> {
    const members = state.filter(([type, key]) => type === 'm.room.member' && key !== userId);
    const events = await getEvents(this.db, members.map(([, , id]) => id));
    const withMembership = (wanted: string[]) =>
      members.filter(([, , id]) => wanted.includes(String(events.get(id)?.json.content?.membership))).map(([, key]) => key).sort().slice(0, 5);
    const current = withMembership(['join', 'invite']);
    return new Set(current.length > 0 ? current : withMembership(['leave', 'ban']));
  }

  @Put('v2/send_leave/:roomId/:eventId')
  @HttpCode(200)
  async sendLeave(@Req() req: FastifyRequest, @Param('roomId') roomId: string, @Param('eventId') eventId: string) {
    await this.receiveMembership(req, 'leave', roomId, eventId);
    return {};
  }

  /** Deprecated v1: [200, {}]. */
  @Put('v1/send_leave/:roomId/:eventId')
  @HttpCode(200)
  async sendLeaveV1(@Req() req: FastifyRequest, @Param('roomId') roomId: string, @Param('eventId') eventId: string) {
    await this.receiveMembership(req, 'leave', roomId, eventId);
    return [200, {}];
  }

  @Put('v1/send_knock/:roomId/:eventId')
  @HttpCode(200)
  async sendKnock(@Req() req: FastifyRequest, @Param('roomId') roomId: string, @Param('eventId') eventId: string) {
    const { room } = await this.receiveMembership(req, 'knock', roomId, eventId);
    return { knock_room_state: await this.strippedState(room.roomId) };
  }

  private async strippedState(roomId: string) {
    return (await getCurrentStateEvents(this.db, roomId, STRIPPED_STATE_TYPES)).map((s) => strippedStateOf(s.json));
  }

  /** Checks a signed membership event from `origin` and has the room-server decide it; 403 when refused. */
  private async receiveMembership(req: FastifyRequest, kind: Kind, roomId: string, eventId: string): Promise<{ room: StoredRoom; pdu: Pdu }> {
    const origin = await this.ctx.authenticate(req);
    const room = await heldRoom(this.db, roomId);
    await checkServerAcl(this.db, roomId, origin);
    const rv = getRoomVersion(room.roomVersion);
    const body = kind === 'join' ? await this.countersignJoin(origin, room, rv, req.body) : req.body;
    const check = await this.ctx.verifier.verify(body, rv);
    if (!check.ok) throw new MatrixError(400, 'M_BAD_JSON', `the ${kind} event is not valid: ${check.error}`);
    if (check.redacted) throw new MatrixError(400, 'M_BAD_JSON', `the ${kind} event's content hash does not match`);
    if (check.eventId !== eventId) throw new MatrixError(400, 'M_BAD_JSON', `the event's id is ${check.eventId}, not ${eventId}`);
    const pdu = check.pdu;
    if (pdu.room_id !== roomId || pdu.type !== 'm.room.member' || pdu.content?.membership !== kind || pdu.state_key !== pdu.sender) {
      throw new MatrixError(400, 'M_BAD_JSON', `the event is not a ${kind} of its sender in ${roomId}`);
    }
    if (domainOf(pdu.sender) !== origin) throw new MatrixError(403, 'M_FORBIDDEN', `${origin} may not send a ${kind} for ${pdu.sender}`);
    const request: InputFederatedPdusRequest = { op: 'inputFederatedPdus', roomId, roomVersion: rv.id, origin, pdus: [pdu], sendOnBehalf: true };
    const reply = await requestForRoom<InputFederatedPdusRequest, InputPdusReply>(this.bus, ROOMSERVER_FEDERATION, roomId, request, { timeoutMs: 120_000 });
    const result = reply.results[eventId];
    if (!result?.accepted || result.softFailed) {
      throw new MatrixError(403, 'M_FORBIDDEN', `the ${kind} is refused: ${result?.error ?? 'not authorized by the current state'}`);
    }
    return { room, pdu };
  }

  /**
   * A restricted join naming one of our users as its authoriser: this server checks that the
   * user still meets an allow condition (the auth rules check only the authoriser) and signs
   * the event before it is verified, decided and sent on, keeping the joining server's signature.
   * Anything else is returned as it came (verification refuses what is malformed).
   */
  private async countersignJoin(origin: string, room: StoredRoom, rv: RoomVersion, body: unknown): Promise<unknown> {
    if (!rv.restrictedJoinRule || !isObject(body) || !isObject(body.content)) return body;
    const via = body.content.join_authorised_via_users_server;
    if (typeof via !== 'string' || domainOf(via) !== this.ctx.serverName) return body;
    const sender = body.sender;
    if (typeof sender !== 'string' || domainOf(sender) !== origin || body.state_key !== sender || body.content.membership !== 'join') return body;
    const decision = await restrictedJoinDecision(this.db, this.ctx.serverName, rv, room.roomId, sender);
    const refusal = restrictedJoinRefusal(decision, room.roomId, sender);
    if (refusal) throw refusal;
    // Signing covers the event's hashes: a content that does not match them is not signed.
    if (!checkContentHash(body)) throw new MatrixError(400, 'M_BAD_JSON', "the join event's content hash does not match");
    return hashAndSignEvent(body as Pdu, this.ctx.serverName, this.ctx.keys.current, rv);
  }

  // ---------------------------------------------------------------------------------------------
  // Invites of our users

  @Put('v2/invite/:roomId/:eventId')
  @HttpCode(200)
  async invite(@Req() req: FastifyRequest, @Param('roomId') roomId: string, @Param('eventId') eventId: string, @Body() body: unknown) {
    const origin = await this.ctx.authenticate(req);
    if (!isObject(body)) throw notAnObject(body);
    const version = body.room_version;
    if (!isKnownRoomVersion(version)) {
      throw new MatrixError(400, 'M_INCOMPATIBLE_ROOM_VERSION', `room version ${JSON.stringify(version)} is not supported by this server`, { room_version: version });
    }
    const inviteRoomState = Array.isArray(body.invite_room_state) ? body.invite_room_state : [];
    return { event: await this.receiveInvite(origin, roomId, eventId, getRoomVersion(version), body.event, inviteRoomState) };
  }

  /**
   * Deprecated v1: the body is the invite event itself (its stripped state in
   * unsigned.invite_room_state); the room version is "1" or "2", as the spec says a v1 invite
   * must be read. The answer is [200, {event}].
   */
  @Put('v1/invite/:roomId/:eventId')
  @HttpCode(200)
  async inviteV1(@Req() req: FastifyRequest, @Param('roomId') roomId: string, @Param('eventId') eventId: string, @Body() body: unknown) {
    const origin = await this.ctx.authenticate(req);
    if (!isObject(body)) throw notAnObject(body);
    const held = await getRoom(this.db, roomId);
    const version = held && (held.roomVersion === '1' || held.roomVersion === '2') ? held.roomVersion : '1';
    const stripped = isObject(body.unsigned) && Array.isArray(body.unsigned.invite_room_state) ? body.unsigned.invite_room_state : [];
    return [200, { event: await this.receiveInvite(origin, roomId, eventId, getRoomVersion(version), body, stripped) }];
  }

  /** Checks an invite of one of our users from `origin`, signs it and has the room-server store it; returns the signed event. */
  private async receiveInvite(origin: string, roomId: string, eventId: string, rv: RoomVersion, event: unknown, inviteRoomState: unknown[]): Promise<Pdu> {
    if (await isRoomHeld(this.db, roomId)) await checkServerAcl(this.db, roomId, origin);
    const check = await this.ctx.verifier.verify(event, rv);
    if (!check.ok) throw new MatrixError(400, 'M_BAD_JSON', `the invite event is not valid: ${check.error}`);
    if (check.redacted) throw new MatrixError(400, 'M_BAD_JSON', "the invite event's content hash does not match");
    if (check.eventId !== eventId) throw new MatrixError(400, 'M_BAD_JSON', `the event's id is ${check.eventId}, not ${eventId}`);
    const pdu = check.pdu;
    if (pdu.room_id !== roomId || pdu.type !== 'm.room.member' || pdu.content?.membership !== 'invite' || typeof pdu.state_key !== 'string') {
      throw new MatrixError(400, 'M_BAD_JSON', `the event is not an invite in ${roomId}`);
    }
    if (domainOf(pdu.state_key) !== this.ctx.serverName) throw new MatrixError(400, 'M_BAD_JSON', `${pdu.state_key} is not a user of this server`);
    if (domainOf(pdu.sender) !== origin) throw new MatrixError(403, 'M_FORBIDDEN', `${origin} may not send an invite from ${pdu.sender}`);
    const signed = hashAndSignEvent(pdu, this.ctx.serverName, this.ctx.keys.current, rv);
    try {
      await this.bus.request<ReceiveInviteRequest, Record<string, never>>(ROOMSERVER_FEDERATION, { op: 'receiveInvite', roomVersion: rv.id, pdu: signed, inviteRoomState }, { timeoutMs: 120_000 });
    } catch (err) {
      if (err instanceof BusError && err.code === 'M_FORBIDDEN') throw new MatrixError(403, 'M_FORBIDDEN', err.message);
      throw err;
    }
    return signed;
  }
}
