import { Inject, Injectable } from '@nestjs/common';
import { DB } from '@tessera/http';
import { getEvent, getRoom, type Db } from '@tessera/storage';
import { notFound } from '../errors.js';
import { RoomReads } from '../rooms/room-reads.js';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { CLIENT_API_DB } from '../tokens.js';
import { serverNameOf } from '../validation.js';

type Report =
  | { kind: 'event'; roomId: string; eventId: string; reason?: string; score?: number }
  | { kind: 'room'; roomId: string; reason: string }
  | { kind: 'user'; userId: string; reason: string };

/**
 * Reports of content (spec "Reporting content"), kept in content_reports for the server's
 * admins. Each refuses with 404 what the reporter may not know of, so a report reveals
 * nothing a reporter could not see anyway.
 */
@Injectable()
export class ReportsService {
  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(CLIENT_API_DB) private readonly clientDb: Db,
    @Inject(RoomReads) private readonly reads: RoomReads,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
  ) {}

  /**
   * The reporter must be joined to the room (spec v1.8+) and able to see the event under
   * history visibility; an unknown, rejected or redacted event is 404 too (the spec allows it
   * for redacted ones: there is nothing left to review).
   */
  async reportEvent(reporter: string, roomId: string, eventId: string, reason: string | undefined, score: number | undefined): Promise<void> {
    const event = await getEvent(this.db, eventId);
    const unseen = () => notFound(`Event ${eventId} not found in ${roomId}, or you cannot see it`);
    if (!event || event.roomId !== roomId || event.outlier || event.rejectedReason !== null || event.streamPos === null || event.redactedBy !== null) throw unseen();
    if (!(await this.reads.isJoined(roomId, reporter))) throw unseen();
    if ((await this.reads.visibleEvents(reporter, roomId, [event])).length === 0) throw unseen();
    await this.store(reporter, { kind: 'event', roomId, eventId, reason, score });
  }

  /** Any room this server knows of; the reporter need not be joined (spec). */
  async reportRoom(reporter: string, roomId: string, reason: string): Promise<void> {
    if (!(await getRoom(this.db, roomId))) throw notFound(`Room ${roomId} is not known to this server`);
    await this.store(reporter, { kind: 'room', roomId, reason });
  }

  /** A user with an account here, or a remote user this server has seen in a room. */
  async reportUser(reporter: string, userId: string, reason: string): Promise<void> {
    if (!(await this.knowsUser(userId))) throw notFound(`User ${userId} is not known to this server`);
    await this.store(reporter, { kind: 'user', userId, reason });
  }

  private async knowsUser(userId: string): Promise<boolean> {
    if (serverNameOf(userId) === this.settings.serverName) {
      const { rows } = await this.clientDb.query('SELECT 1 FROM accounts WHERE user_id = $1', [userId]);
      return rows.length > 0;
    }
    const { rows } = await this.db.query('SELECT 1 FROM room_memberships WHERE user_id = $1 LIMIT 1', [userId]);
    return rows.length > 0;
  }

  private async store(reporter: string, report: Report): Promise<void> {
    await this.clientDb.query(
      `INSERT INTO content_reports (kind, reporter, room_id, event_id, target_user_id, reason, score, received_ts)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [
        report.kind,
        reporter,
        report.kind === 'user' ? null : report.roomId,
        report.kind === 'event' ? report.eventId : null,
        report.kind === 'user' ? report.userId : null,
        report.reason ?? null,
        report.kind === 'event' ? (report.score ?? null) : null,
        Date.now(),
      ],
    );
  }
}
