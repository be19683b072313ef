/**
 * Schema of the event log and its read models. persistence is the only writer; room-server,
 * client-api (sync), federation and fanout-sender read it through the repositories beside
 * this file.
 *
 * Numeric ids (nids) for events, event types and state keys keep the state tables narrow:
 * a state entry is three integers. State is stored as deltas over shared snapshots
 * (state_snapshots / state_snapshot_entries), never as a full copy per event.
 */
import type { Migration } from '../migrate.js';
import { eventDestinationsMigrations } from '../fanout/migrations.js';
import { eventRelationsMigrations } from './relations-migrations.js';
import { eventTimestampMigrations } from './timestamp-migrations.js';

export const eventLogMigrations: Migration[] = [
  {
    id: 'event_log_0001_initial',
    sql: `
CREATE TABLE event_types (
  type_nid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_type TEXT NOT NULL UNIQUE
);
CREATE TABLE event_state_keys (
  state_key_nid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  state_key TEXT NOT NULL UNIQUE
);

-- One row per room. sequence is the optimistic-concurrency guard: an append names the
-- sequence it decided against and fails when the room has moved on.
CREATE TABLE rooms (
  room_nid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  room_id TEXT NOT NULL UNIQUE,
  room_version TEXT NOT NULL,
  sequence BIGINT NOT NULL DEFAULT 0
);

-- Each event once. stream_pos is the global order consumers follow (NULL for outliers, which
-- are not part of any timeline). The JSON is the event as it is now stored: for a redacted
-- event, its redacted form.
CREATE TABLE events (
  event_nid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id TEXT NOT NULL UNIQUE,
  room_nid BIGINT NOT NULL REFERENCES rooms (room_nid),
  type_nid BIGINT NOT NULL,
  state_key_nid BIGINT,
  sender TEXT NOT NULL,
  depth BIGINT NOT NULL,
  origin_server_ts BIGINT NOT NULL,
  stream_pos BIGINT UNIQUE,
  outlier BOOLEAN NOT NULL DEFAULT FALSE,
  soft_failed BOOLEAN NOT NULL DEFAULT FALSE,
  rejected_reason TEXT,
  state_before_nid BIGINT,
  state_after_nid BIGINT,
  redacted_by TEXT,
  json TEXT NOT NULL
);
CREATE INDEX events_room_stream ON events (room_nid, stream_pos);
CREATE INDEX events_room_topological ON events (room_nid, depth, stream_pos);
CREATE INDEX events_member_history ON events (state_key_nid, stream_pos) WHERE state_key_nid IS NOT NULL;

-- DAG edges by event id: a prev or auth event may not be known yet (federation).
CREATE TABLE event_prev_edges (
  event_nid BIGINT NOT NULL,
  prev_event_id TEXT NOT NULL,
  PRIMARY KEY (event_nid, prev_event_id)
);
CREATE INDEX event_prev_edges_prev ON event_prev_edges (prev_event_id);
CREATE TABLE event_auth_edges (
  event_nid BIGINT NOT NULL,
  auth_event_id TEXT NOT NULL,
  PRIMARY KEY (event_nid, auth_event_id)
);

-- State snapshots: a snapshot is its parent plus its own entries (the delta). chain_length
-- counts deltas down to a full snapshot (0 = full), bounded so loading is one short query.
CREATE TABLE state_snapshots (
  snapshot_nid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  room_nid BIGINT NOT NULL,
  parent_nid BIGINT REFERENCES state_snapshots (snapshot_nid),
  chain_length INTEGER NOT NULL
);
CREATE TABLE state_snapshot_entries (
  snapshot_nid BIGINT NOT NULL,
  type_nid BIGINT NOT NULL,
  state_key_nid BIGINT NOT NULL,
  event_nid BIGINT NOT NULL,
  PRIMARY KEY (snapshot_nid, type_nid, state_key_nid)
);

CREATE TABLE forward_extremities (
  room_nid BIGINT NOT NULL,
  event_nid BIGINT NOT NULL,
  PRIMARY KEY (room_nid, event_nid)
);

-- The room's current state, materialized for reads (sync, membership checks).
CREATE TABLE current_state (
  room_nid BIGINT NOT NULL,
  type_nid BIGINT NOT NULL,
  state_key_nid BIGINT NOT NULL,
  event_nid BIGINT NOT NULL,
  PRIMARY KEY (room_nid, type_nid, state_key_nid)
);

-- Current membership of each user in each room, with the stream position where it last
-- changed: sync finds a user's changed rooms by (user_id, stream_pos).
CREATE TABLE room_memberships (
  room_nid BIGINT NOT NULL,
  user_id TEXT NOT NULL,
  membership TEXT NOT NULL,
  event_nid BIGINT NOT NULL,
  stream_pos BIGINT NOT NULL,
  PRIMARY KEY (room_nid, user_id)
);
CREATE INDEX room_memberships_user ON room_memberships (user_id, stream_pos);

-- Idempotent client sends: (user, device, txn id) -> the event it produced. Inserted in the
-- same transaction as the event.
CREATE TABLE client_txns (
  user_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  txn_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  PRIMARY KEY (user_id, device_id, txn_id)
);

-- The global stream position, allocated under this row's lock inside the appending
-- transaction: commits happen in position order, so "position > cursor" never misses one.
CREATE TABLE stream_counter (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  position BIGINT NOT NULL
);
INSERT INTO stream_counter (id, position) VALUES (1, 0);

CREATE TABLE consumer_cursors (
  consumer TEXT PRIMARY KEY,
  position BIGINT NOT NULL
);
`,
  },
  // Joined servers per room and per local event, for fanout-sender.
  ...eventDestinationsMigrations,
  // Expression indexes for event relationships (/relations, /threads).
  ...eventRelationsMigrations,
  // Index by origin_server_ts for /timestamp_to_event.
  ...eventTimestampMigrations,
];
