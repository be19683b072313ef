import { Inject, Injectable, Optional, type OnModuleDestroy } from '@nestjs/common';
import { badJson, forbidden, missingParam } from '../errors.js';
import { ROOM_MEMBERSHIP, type RoomMembership } from '../room-membership.js';
import { StreamChanges } from '../stream-changes.js';
import type { JsonBody } from '../validation.js';
import { EPHEMERAL_STORE, type EphemeralStore } from './ephemeral-store.js';

const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_TIMEOUT_MS = 120_000;

export interface TypingChanges {
  /** The typing stream position these changes reach. */
  position: number;
  /** Room id to the users typing there now, for rooms whose typing changed after `since`. */
  rooms: Record<string, string[]>;
}

/** Typing notifications in the ephemeral store (Redis with expiry, or memory). */
@Injectable()
export class TypingService implements OnModuleDestroy {
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    @Inject(EPHEMERAL_STORE) private readonly store: EphemeralStore,
    @Inject(StreamChanges) private readonly changes: StreamChanges,
    @Optional() @Inject(ROOM_MEMBERSHIP) private readonly membership?: RoomMembership,
  ) {}

  async setTyping(requesterId: string, roomId: string, userId: string, body: JsonBody): Promise<void> {
    if (requesterId !== userId) throw forbidden('You can only set your own typing state');
    if (body.typing === undefined) throw missingParam('missing "typing"');
    if (typeof body.typing !== 'boolean') throw badJson('"typing" must be true or false');
    const timeout = body.timeout;
    if (timeout !== undefined && (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 0)) throw badJson('"timeout" must be a non-negative integer');
    // TODO(rooms): without the rooms read model (ROOM_MEMBERSHIP) membership is not checked.
    if (this.membership && !(await this.membership.isJoined(roomId, userId))) throw forbidden('You are not in this room');

    const timeoutMs = body.typing ? Math.min(timeout ?? DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS) || DEFAULT_TIMEOUT_MS : 0;
    await this.record(roomId, userId, timeoutMs);
    await this.outbound?.(roomId, userId, timeoutMs > 0);
  }

  /** Sends typing changes of local users on (m.typing EDUs); set by the EDU bridge. */
  outbound?: (roomId: string, userId: string, typing: boolean) => Promise<void>;

  /** Records a typing change (local, or from an m.typing EDU) and wakes /sync. */
  async record(roomId: string, userId: string, timeoutMs: number): Promise<void> {
    const position = await this.store.setTyping(roomId, userId, timeoutMs);
    this.changes.emit({ stream: 'typing', position, roomId });
    if (timeoutMs > 0) this.scheduleExpiry(roomId, timeoutMs);
  }

  /** When a typer's time runs out the room's typing changes: give it a position and wake /sync. */
  private scheduleExpiry(roomId: string, timeoutMs: number): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.store
        .expireTyping(roomId)
        .then((position) => position !== undefined && this.changes.emit({ stream: 'typing', position, roomId }))
        .catch(() => undefined);
    }, timeoutMs + 50);
    timer.unref();
    this.timers.add(timer);
  }

  async currentPosition(): Promise<number> {
    return this.store.currentTypingPosition();
  }

  /** For /sync: rooms (of those given) whose typing changed after `since`, with who types now. */
  async getTypingSince(roomIds: string[], since: number): Promise<TypingChanges> {
    const position = await this.store.currentTypingPosition();
    const rooms: Record<string, string[]> = {};
    for (const roomId of roomIds) {
      const state = await this.store.getTyping(roomId);
      if (state.position > since) rooms[roomId] = state.userIds;
    }
    return { position, rooms };
  }

  onModuleDestroy(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }
}
