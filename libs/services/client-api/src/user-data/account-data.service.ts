import { Inject, Injectable } from '@nestjs/common';
import type { Db, Queryable } from '@tessera/storage';
import { nextStreamPosition, currentStreamPosition } from '../storage/streams.js';
import { StreamChanges } from '../stream-changes.js';
import { CLIENT_API_DB } from '../tokens.js';

export interface AccountDataEvent {
  type: string;
  content: Record<string, unknown>;
}

export interface AccountDataChanges {
  /** The account data stream position these changes reach (use as the next `since`). */
  position: number;
  global: AccountDataEvent[];
  /** Room id to that room's changed account data. */
  rooms: Record<string, AccountDataEvent[]>;
}

/** Global ('' room) and per-room account data, on the account_data stream. */
@Injectable()
export class AccountDataService {
  constructor(
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(StreamChanges) private readonly changes: StreamChanges,
  ) {}

  /** Stores the content (replacing any previous), returns the new stream position. roomId '' is global. */
  async set(userId: string, roomId: string, type: string, content: Record<string, unknown>): Promise<number> {
    const position = await this.db.transaction((tx) => this.setIn(tx, userId, roomId, type, content));
    this.changes.emit({ stream: 'account_data', position, userId });
    return position;
  }

  /** The same inside a caller's transaction; the caller emits the change after commit. */
  async setIn(tx: Queryable, userId: string, roomId: string, type: string, content: Record<string, unknown>): Promise<number> {
    const position = await nextStreamPosition(tx, 'account_data');
    await tx.query(
      `INSERT INTO account_data (user_id, room_id, type, content, stream_position) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (user_id, room_id, type) DO UPDATE SET content = $4, stream_position = $5`,
      [userId, roomId, type, JSON.stringify(content), position],
    );
    return position;
  }

  async get(userId: string, roomId: string, type: string): Promise<Record<string, unknown> | undefined> {
    const { rows } = await this.db.query<{ content: Record<string, unknown> }>('SELECT content FROM account_data WHERE user_id = $1 AND room_id = $2 AND type = $3', [userId, roomId, type]);
    return rows[0]?.content;
  }

  async currentPosition(): Promise<number> {
    return currentStreamPosition(this.db, 'account_data');
  }

  /**
   * For /sync: the user's account data changed after `since` (0: all of it). The position is
   * read first, so a write committing meanwhile is reported now or next time, never lost.
   */
  async getAccountDataSince(userId: string, since: number): Promise<AccountDataChanges> {
    const position = await this.currentPosition();
    const { rows } = await this.db.query<{ room_id: string; type: string; content: Record<string, unknown> }>(
      'SELECT room_id, type, content FROM account_data WHERE user_id = $1 AND stream_position > $2 AND stream_position <= $3 ORDER BY stream_position',
      [userId, since, position],
    );
    const result: AccountDataChanges = { position, global: [], rooms: {} };
    for (const row of rows) {
      const event = { type: row.type, content: row.content };
      if (row.room_id === '') result.global.push(event);
      else (result.rooms[row.room_id] ??= []).push(event);
    }
    return result;
  }
}
