import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { DB } from '@tessera/http';
import { migrate, type Db, type Migration } from '@tessera/storage';

/**
 * client-api's own tables for rooms: local aliases, the public room directory, forgotten
 * rooms. Applied when the module starts (the migration runner is safe to call concurrently,
 * so replicas starting together are fine). Never edit an applied migration: add one.
 */
export const roomsMigrations: Migration[] = [
  {
    id: 'client_api_rooms_0001_aliases_directory_forget',
    sql: `
CREATE TABLE room_aliases (
  alias text PRIMARY KEY,
  room_id text NOT NULL,
  creator text NOT NULL,
  created_ts bigint NOT NULL
);
CREATE INDEX room_aliases_room ON room_aliases (room_id);

-- Rooms published in this server's public room directory.
CREATE TABLE room_directory (
  room_id text PRIMARY KEY,
  published_ts bigint NOT NULL
);

-- POST /forget: the room is hidden from the user until a later membership (stream position
-- of the membership that was forgotten).
CREATE TABLE forgotten_rooms (
  user_id text NOT NULL,
  room_id text NOT NULL,
  membership_stream_pos bigint NOT NULL,
  PRIMARY KEY (user_id, room_id)
);
`,
  },
  {
    // Synapse's admin API (DELETE /_synapse/admin/v2/rooms with block, PUT .../block): local
    // users may not join, knock on or be invited to a blocked room. A room may be blocked before
    // this server knows it.
    id: 'client_api_rooms_0002_blocked_rooms',
    sql: `
CREATE TABLE blocked_rooms (
  room_id text PRIMARY KEY,
  user_id text NOT NULL,
  blocked_ts bigint NOT NULL
);

-- DELETE /_synapse/admin/v2/rooms: each deletion's progress, for its delete_status (kept a day
-- after it ends, as Synapse), shared by every client-api replica.
CREATE TABLE room_delete_tasks (
  delete_id text PRIMARY KEY,
  room_id text NOT NULL,
  status text NOT NULL,
  error text,
  result jsonb NOT NULL,
  updated_ts bigint NOT NULL
);
CREATE INDEX room_delete_tasks_room ON room_delete_tasks (room_id);
`,
  },
];

@Injectable()
export class RoomsMigrator implements OnModuleInit {
  constructor(@Inject(DB) private readonly db: Db) {}

  async onModuleInit(): Promise<void> {
    await migrate(this.db, roomsMigrations);
  }
}
