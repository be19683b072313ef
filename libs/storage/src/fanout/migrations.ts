/**
 * Schema of outbound federation.
 *
 * Written by persistence in the append transaction (so the joined servers of an event are
 * computed once, when the event is stored, never by each sender):
 * - room_joined_servers: per room, each server with joined members and how many, kept in step
 *   with room_memberships by every current-state membership change.
 * - event_destinations: for each local timeline event, one row per remote server joined at it:
 *   the outbound PDU queue. fanout-sender deletes a row once the server has it.
 *
 * Written by fanout-sender only:
 * - fanout_destinations: per remote server, the stream position up to which every PDU was
 *   delivered (or skipped by catch-up), and its retry state.
 * - fanout_replicas, fanout_shard_leases: which sender replicas are alive and which shard of
 *   destinations each one owns, with expiry (times in ms of the database clock).
 * - fanout_pending_edus: EDUs that must survive a restart (to-device messages), per server,
 *   deleted once delivered.
 */
import type { Migration } from '../migrate.js';

/** Applied with the event log (eventLogMigrations): persistence writes these tables. */
export const eventDestinationsMigrations: Migration[] = [
  {
    id: 'event_log_0002_joined_servers_and_destinations',
    sql: `
CREATE TABLE room_joined_servers (
  room_nid BIGINT NOT NULL,
  server_name TEXT NOT NULL,
  joined_members INTEGER NOT NULL,
  PRIMARY KEY (room_nid, server_name)
);
INSERT INTO room_joined_servers (room_nid, server_name, joined_members)
SELECT room_nid, substring(user_id FROM position(':' IN user_id) + 1), count(*)
FROM room_memberships WHERE membership = 'join' GROUP BY 1, 2;

CREATE TABLE event_destinations (
  server_name TEXT NOT NULL,
  stream_pos BIGINT NOT NULL,
  room_nid BIGINT NOT NULL,
  PRIMARY KEY (server_name, stream_pos)
);
CREATE INDEX event_destinations_pos ON event_destinations (stream_pos);
`,
  },
];

/** Applied by fanout-sender. */
export const fanoutSenderMigrations: Migration[] = [
  {
    id: 'fanout_sender_0001_destinations_and_leases',
    sql: `
CREATE TABLE fanout_destinations (
  server_name TEXT PRIMARY KEY,
  sent_position BIGINT NOT NULL DEFAULT 0,
  failures INTEGER NOT NULL DEFAULT 0,
  retry_at_ms BIGINT NOT NULL DEFAULT 0,
  last_error TEXT,
  last_success_ms BIGINT
);
CREATE TABLE fanout_replicas (
  replica_id TEXT PRIMARY KEY,
  expires_at_ms BIGINT NOT NULL
);
CREATE TABLE fanout_shard_leases (
  shard INTEGER PRIMARY KEY,
  owner TEXT NOT NULL,
  expires_at_ms BIGINT NOT NULL
);
`,
  },
  {
    // To-device messages for other servers, kept until delivered (pending-edus.ts).
    id: 'fanout_sender_0002_pending_edus',
    sql: `
CREATE TABLE fanout_pending_edus (
  id BIGSERIAL PRIMARY KEY,
  server_name TEXT NOT NULL,
  edu JSONB NOT NULL
);
CREATE INDEX fanout_pending_edus_server ON fanout_pending_edus (server_name, id);
`,
  },
];
