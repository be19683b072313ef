import { Inject, Injectable } from '@nestjs/common';
import type { InitialStateEvent } from '@tessera/bus';
import { DB, LOGGER } from '@tessera/http';
import { getRoomVersion, isKnownRoomVersion, isValidUserId, PowerContext, roomCreators, type RoomEvent, type RoomVersion } from '@tessera/protocol';
import {
  getCurrentStateEvents, getCurrentStreamPosition, getLastRoomEventAtOrBefore, getRoom, getUserMembershipInRoom, type Db, type StoredEvent,
} from '@tessera/storage';
import type { Logger } from 'pino';
import { directoryStore } from '../directory/directory.store.js';
import { MatrixError, badJson, forbidden, invalidParam, notFound } from '../errors.js';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { requireString, serverNameOf, type JsonBody } from '../validation.js';
import { RoomInput } from './room-input.service.js';
import { integerPowerLevels, newRoomPowerLevels, restrictedOldRoomPowerLevels } from './room-upgrade-power.js';
import { UpgradedRoomCarryOver } from './upgraded-room-carry-over.js';

type Json = Record<string, unknown>;

/** State carried to the new room, in Synapse's order (power levels go first, see below). */
const COPIED_STATE = [
  'm.room.join_rules', 'm.room.name', 'm.room.topic', 'm.room.history_visibility', 'm.room.guest_access',
  'm.room.avatar', 'm.room.encryption', 'm.room.server_acl',
];

/**
 * POST /rooms/{roomId}/upgrade (spec "Room Upgrades", server behaviour), as Synapse does it:
 * a new room whose m.room.create names the old one as predecessor, with the old room's
 * transferable state and bans; local aliases, the canonical alias and the directory listing
 * move over; the old room gets an m.room.tombstone and levels that silence ordinary users.
 * Every write goes to room-server as an ordinary createRoom/sendEvent/membership request.
 */
@Injectable()
export class RoomUpgradeService {
  /** Rooms being upgraded by this process: a second upgrade at the same time is refused (Synapse). */
  private readonly inProgress = new Set<string>();

  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(RoomInput) private readonly input: RoomInput,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(UpgradedRoomCarryOver) private readonly carryOver: UpgradedRoomCarryOver,
  ) {}

  async upgrade(userId: string, roomId: string, body: JsonBody): Promise<{ replacement_room: string }> {
    const versionId = requireString(body, 'new_version');
    if (!isKnownRoomVersion(versionId)) {
      throw new MatrixError(400, 'M_UNSUPPORTED_ROOM_VERSION', `This server does not support room version ${JSON.stringify(versionId)}`);
    }
    const newVersion = getRoomVersion(versionId);
    // The spec: ignored when the new version has no additional creators.
    const additionalCreators = newVersion.privilegedCreators ? requestedCreators(body.additional_creators) : [];
    if (this.inProgress.has(roomId)) throw new MatrixError(400, 'M_UNKNOWN', 'An upgrade for this room is currently in progress');
    this.inProgress.add(roomId);
    try {
      return { replacement_room: await this.run(userId, roomId, newVersion, additionalCreators) };
    } finally {
      this.inProgress.delete(roomId);
    }
  }

  private async run(userId: string, oldRoomId: string, newVersion: RoomVersion, additionalCreators: string[]): Promise<string> {
    const room = await getRoom(this.db, oldRoomId);
    if (!room || !isKnownRoomVersion(room.roomVersion)) throw notFound(`Room ${oldRoomId} is not known to this server`);
    const oldVersion = getRoomVersion(room.roomVersion);
    const state = await getCurrentStateEvents(this.db, oldRoomId, ['m.room.create', 'm.room.power_levels', 'm.room.canonical_alias', 'm.space.child', ...COPIED_STATE]);
    const one = (type: string) => state.find((e) => e.type === type && e.stateKey === '');
    const create = one('m.room.create');
    if (!create) throw notFound(`Room ${oldRoomId} is not known to this server`);
    const powerEvent = one('m.room.power_levels');

    // Step 1 of the spec, checked before anything is made so that a refusal changes nothing.
    const membership = await getUserMembershipInRoom(this.db, oldRoomId, userId);
    if (membership?.membership !== 'join') throw forbidden(`You are not in ${oldRoomId}`);
    const power = new PowerContext(powerEvent?.json as RoomEvent | undefined, create.json as RoomEvent, oldVersion);
    if (power.userLevel(userId) < power.eventLevel('m.room.tombstone', true)) {
      throw forbidden('You do not have the power to send m.room.tombstone here, so you cannot upgrade this room');
    }

    const oldLevels = powerEvent ? integerPowerLevels(powerEvent.json.content as Json, oldVersion) : undefined;
    const upgraderWasPrivilegedCreator = oldVersion.privilegedCreators && roomCreators(create.json as RoomEvent, oldVersion).includes(userId);
    const levels = oldLevels && newRoomPowerLevels(oldLevels, userId, newVersion, { additionalCreators, upgraderWasPrivilegedCreator });

    // The power levels first, so that each copied event is authorized by them (Synapse sends
    // the copied levels where createRoom's defaults would go).
    const initialState: InitialStateEvent[] = [];
    if (levels) initialState.push({ type: 'm.room.power_levels', state_key: '', content: levels.initial });
    for (const type of COPIED_STATE) {
      const event = one(type);
      if (event) initialState.push({ type, state_key: '', content: event.json.content as Json });
    }
    if (create.json.content?.type === 'm.space') {
      // A space keeps its rooms; a child event with empty content was removed from it.
      for (const child of state.filter((e) => e.type === 'm.space.child' && e.stateKey !== null)) {
        if (Object.keys((child.json.content ?? {}) as Json).length > 0) initialState.push({ type: 'm.space.child', state_key: child.stateKey!, content: child.json.content as Json });
      }
    }

    const { roomId: newRoomId } = await this.input.createRoom({
      sender: userId,
      // The copied state replaces the preset's; the preset fills in only what the old room lacked (as in Synapse).
      preset: 'private_chat',
      room_version: newVersion.id,
      initial_state: initialState,
      creation_content: await this.creationContent(oldRoomId, create, newVersion, additionalCreators),
    });
    this.logger.info({ oldRoomId, newRoomId, roomVersion: newVersion.id }, 'room upgrade: replacement room created');
    await this.carryOver.upgraded(oldRoomId, newRoomId);

    for (const ban of await getCurrentStateEvents(this.db, oldRoomId, ['m.room.member'])) {
      const content = ban.json.content as Json;
      if (content.membership !== 'ban' || ban.stateKey === null) continue;
      await this.input.membership({ action: 'ban', roomId: newRoomId, sender: userId, target: ban.stateKey, content: withoutMembership(content) });
    }

    await this.input.sendEvent({
      roomId: oldRoomId, sender: userId, type: 'm.room.tombstone', stateKey: '',
      content: { body: 'This room has been replaced', replacement_room: newRoomId },
    });

    await this.moveAliases(userId, oldRoomId, newRoomId, one('m.room.canonical_alias'));
    if (await directoryStore.isPublished(this.db, oldRoomId)) {
      await directoryStore.setPublished(this.db, oldRoomId, false);
      await directoryStore.setPublished(this.db, newRoomId, true);
    }

    if (oldLevels && levels) {
      const restricted = restrictedOldRoomPowerLevels(oldLevels);
      if (restricted) {
        await this.input.sendEvent({ roomId: oldRoomId, sender: userId, type: 'm.room.power_levels', stateKey: '', content: restricted }).catch((err: unknown) => {
          // Like Synapse: the upgrade stands even if the old room cannot be silenced.
          this.logger.warn({ err, oldRoomId }, 'room upgrade: could not restrict the old room power levels');
        });
      }
      // The upgrading user's temporary raise is taken back (Synapse always resends; only a change is sent here).
      if (levels.initial !== levels.final) {
        await this.input.sendEvent({ roomId: newRoomId, sender: userId, type: 'm.room.power_levels', stateKey: '', content: levels.final });
      }
    }
    return newRoomId;
  }

  /**
   * The new m.room.create content: predecessor, the old room's type and m.federate: false, and
   * the requested additional creators where the new version has them. predecessor.event_id
   * (deprecated in v1.16, which lets upgrades to v12 leave it out) names the old room's last
   * event: Synapse names the tombstone, which cannot exist before the room it points to is made.
   */
  private async creationContent(oldRoomId: string, create: StoredEvent, newVersion: RoomVersion, additionalCreators: string[]): Promise<Json> {
    const predecessor: Json = { room_id: oldRoomId };
    if (!newVersion.roomIdIsCreateEventHash) {
      const last = await getLastRoomEventAtOrBefore(this.db, oldRoomId, await getCurrentStreamPosition(this.db));
      if (last) predecessor.event_id = last.eventId;
    }
    const content: Json = { predecessor };
    const oldContent = (create.json.content ?? {}) as Json;
    if (oldContent['m.federate'] === false) content['m.federate'] = false;
    if (typeof oldContent.type === 'string') content.type = oldContent.type;
    if (newVersion.privilegedCreators && additionalCreators.length > 0) content.additional_creators = additionalCreators;
    return content;
  }

  /**
   * Synapse's _move_aliases_to_new_room: the local aliases now resolve to the new room; the
   * canonical alias event's local aliases move to the new room's, remote ones stay behind.
   */
  private async moveAliases(userId: string, oldRoomId: string, newRoomId: string, canonical: StoredEvent | undefined): Promise<void> {
    await directoryStore.moveAliases(this.db, oldRoomId, newRoomId);
    if (!canonical) return;
    const isLocal = (alias: unknown) => typeof alias === 'string' && serverNameOf(alias) === this.settings.serverName;
    const oldContent: Json = { ...(canonical.json.content as Json) };
    const newContent: Json = {};
    if (isLocal(oldContent.alias)) {
      newContent.alias = oldContent.alias;
      delete oldContent.alias;
    }
    if (Array.isArray(oldContent.alt_aliases) && oldContent.alt_aliases.length > 0) {
      const alt = oldContent.alt_aliases as unknown[];
      newContent.alt_aliases = alt.filter(isLocal);
      const staying = alt.filter((a) => !isLocal(a));
      if (staying.length > 0) oldContent.alt_aliases = staying;
      else delete oldContent.alt_aliases;
    }
    for (const [roomId, content] of [[oldRoomId, oldContent], [newRoomId, newContent]] as const) {
      await this.input.sendEvent({ roomId, sender: userId, type: 'm.room.canonical_alias', stateKey: '', content }).catch((err: unknown) => {
        // As Synapse: the new room is answered even if an alias event is refused.
        this.logger.warn({ err, roomId }, 'room upgrade: could not update the canonical alias');
      });
    }
  }
}

/** `additional_creators` of the request: a list of user ids, without repeats. */
function requestedCreators(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((u) => typeof u === 'string')) throw badJson('"additional_creators" must be a list of user ids');
  for (const u of value as string[]) if (!isValidUserId(u)) throw invalidParam(`"${u}" in "additional_creators" is not a user id`);
  return [...new Set(value as string[])];
}

function withoutMembership(content: Json): Json {
  const rest = { ...content };
  delete rest.membership;
  return rest;
}
