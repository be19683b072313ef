import type { Migration } from '@tessera/storage';

/**
 * client-api's own tables (DESIGN: accounts, devices, tokens, E2EE keys, filters and account
 * data are client-api's, and it is their only writer). Applied alongside the other owners'
 * lists by the process that opens the database. Never edit an applied migration: add one.
 *
 * Streams: each kind of per-user data /sync reports incrementally carries a stream position
 * from client_api_streams. A writer takes the next position with an UPDATE of that row inside
 * its own transaction, so the row lock orders writers and positions become visible in order:
 * a reader that has seen position N never later finds a new row below N.
 */
export const clientApiMigrations: Migration[] = [
  {
    id: 'client_api_0001_accounts',
    sql: `
CREATE TABLE client_api_streams (
  name text PRIMARY KEY,
  position bigint NOT NULL
);
INSERT INTO client_api_streams (name, position) VALUES
  ('account_data', 0), ('to_device', 0), ('device_lists', 0), ('receipts', 0);

CREATE TABLE accounts (
  user_id text PRIMARY KEY,
  password_hash text,
  is_admin boolean NOT NULL DEFAULT false,
  user_type text,
  created_ts bigint NOT NULL,
  deactivated boolean NOT NULL DEFAULT false,
  -- displayname, avatar_url and any custom profile fields, as served by /profile
  profile jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE devices (
  user_id text NOT NULL,
  device_id text NOT NULL,
  display_name text,
  created_ts bigint NOT NULL,
  last_seen_ts bigint,
  last_seen_ip text,
  PRIMARY KEY (user_id, device_id)
);

-- Opaque tokens by their SHA-256; JWT access tokens by 'jwt:' + jti (so logout can revoke them).
CREATE TABLE access_tokens (
  token_hash text PRIMARY KEY,
  user_id text NOT NULL,
  device_id text NOT NULL,
  created_ts bigint NOT NULL
);
CREATE INDEX access_tokens_by_device ON access_tokens (user_id, device_id);

-- JWT access tokens stay verifiable by signature after logout: this list refuses them.
CREATE TABLE revoked_access_tokens (
  jti text PRIMARY KEY,
  revoked_ts bigint NOT NULL
);

CREATE TABLE login_tokens (
  token_hash text PRIMARY KEY,
  user_id text NOT NULL,
  expires_ts bigint NOT NULL
);

CREATE TABLE uia_sessions (
  session_id text PRIMARY KEY,
  purpose text NOT NULL,
  user_id text,
  completed jsonb NOT NULL DEFAULT '[]',
  created_ts bigint NOT NULL
);
`,
  },
  {
    id: 'client_api_0002_user_data',
    sql: `
-- room_id '' holds global account data.
CREATE TABLE account_data (
  user_id text NOT NULL,
  room_id text NOT NULL,
  type text NOT NULL,
  content jsonb NOT NULL,
  stream_position bigint NOT NULL,
  PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX account_data_by_position ON account_data (user_id, stream_position);

CREATE TABLE filters (
  filter_id bigserial PRIMARY KEY,
  user_id text NOT NULL,
  filter jsonb NOT NULL
);

-- The user's own push rules and their changes to the server-default rules (see push-rules.ts).
CREATE TABLE push_rules (
  user_id text PRIMARY KEY,
  state jsonb NOT NULL
);

CREATE TABLE receipts (
  room_id text NOT NULL,
  receipt_type text NOT NULL,
  user_id text NOT NULL,
  -- '' for an unthreaded receipt, else 'main' or a thread root event id
  thread_id text NOT NULL,
  event_id text NOT NULL,
  ts bigint NOT NULL,
  stream_position bigint NOT NULL,
  PRIMARY KEY (room_id, receipt_type, user_id, thread_id)
);
CREATE INDEX receipts_by_position ON receipts (room_id, stream_position);
`,
  },
  {
    id: 'client_api_0003_e2ee',
    sql: `
CREATE TABLE device_keys (
  user_id text NOT NULL,
  device_id text NOT NULL,
  keys jsonb NOT NULL,
  PRIMARY KEY (user_id, device_id)
);

CREATE TABLE one_time_keys (
  user_id text NOT NULL,
  device_id text NOT NULL,
  algorithm text NOT NULL,
  key_id text NOT NULL,
  key_json jsonb NOT NULL,
  PRIMARY KEY (user_id, device_id, algorithm, key_id)
);

CREATE TABLE fallback_keys (
  user_id text NOT NULL,
  device_id text NOT NULL,
  algorithm text NOT NULL,
  key_id text NOT NULL,
  key_json jsonb NOT NULL,
  used boolean NOT NULL DEFAULT false,
  PRIMARY KEY (user_id, device_id, algorithm)
);

-- key_type: master, self_signing, user_signing
CREATE TABLE cross_signing_keys (
  user_id text NOT NULL,
  key_type text NOT NULL,
  key_json jsonb NOT NULL,
  PRIMARY KEY (user_id, key_type)
);

CREATE TABLE device_list_changes (
  stream_position bigint NOT NULL,
  user_id text NOT NULL,
  PRIMARY KEY (user_id, stream_position)
);
CREATE INDEX device_list_changes_by_position ON device_list_changes (stream_position);

CREATE TABLE to_device_inbox (
  id bigserial PRIMARY KEY,
  stream_position bigint NOT NULL,
  user_id text NOT NULL,
  device_id text NOT NULL,
  sender text NOT NULL,
  type text NOT NULL,
  content jsonb NOT NULL
);
CREATE INDEX to_device_inbox_by_device ON to_device_inbox (user_id, device_id, stream_position);

CREATE TABLE to_device_txns (
  user_id text NOT NULL,
  device_id text NOT NULL,
  txn_id text NOT NULL,
  created_ts bigint NOT NULL,
  PRIMARY KEY (user_id, device_id, txn_id)
);
`,
  },
  {
    // POST /user/{userId}/openid/request_token: tokens a third party exchanges, through
    // federation's GET /openid/userinfo (federation-ingress reads this table), for the user id.
    // Stored by their SHA-256 as access tokens are.
    id: 'client_api_openid_0001_tokens',
    sql: `
CREATE TABLE openid_tokens (
  token_hash text PRIMARY KEY,
  user_id text NOT NULL,
  expires_ts bigint NOT NULL
);
CREATE INDEX openid_tokens_by_expiry ON openid_tokens (expires_ts);
`,
  },
  {
    // Reports of events, rooms and users (spec "Reporting content"), for the server's admins.
    id: 'client_api_reports_0001_reports',
    sql: `
CREATE TABLE content_reports (
  id bigserial PRIMARY KEY,
  -- event, room or user
  kind text NOT NULL,
  reporter text NOT NULL,
  room_id text,
  event_id text,
  target_user_id text,
  reason text,
  score integer,
  received_ts bigint NOT NULL
);
CREATE INDEX content_reports_by_time ON content_reports (received_ts);
`,
  },
  {
    id: 'client_api_pushers_0001_pushers',
    sql: `
-- Push gateways registered by a user's clients (POST /pushers/set): one per (user, app_id,
-- pushkey); the same app_id and pushkey belong to several users only when set with append.
-- device_id: the device whose access token set it; the pusher is deleted with that device.
CREATE TABLE pushers (
  user_id text NOT NULL,
  app_id text NOT NULL,
  pushkey text NOT NULL,
  kind text NOT NULL,
  app_display_name text NOT NULL,
  device_display_name text NOT NULL,
  profile_tag text,
  lang text NOT NULL,
  data jsonb NOT NULL,
  device_id text NOT NULL,
  created_ts bigint NOT NULL,
  PRIMARY KEY (user_id, app_id, pushkey)
);
CREATE INDEX pushers_by_key ON pushers (app_id, pushkey);
CREATE INDEX pushers_by_device ON pushers (user_id, device_id);
`,
  },
  {
    // Server-side key backups (spec "Server-side key backups"). room_keys_owners has one row per
    // user who ever made a backup: its row lock orders that user's backup writes across replicas
    // (a new version, an upload and a delete never interleave), and last_version numbers versions
    // so a deleted one is never reused and a DELETE of it can still answer 200. A deleted
    // version's row and keys are removed. etag counts changes to the version's keys; key_count is
    // kept in step by the same transactions, so no request counts the keys.
    id: 'client_api_room_keys_0001_backups',
    sql: `
CREATE TABLE room_keys_owners (
  user_id text PRIMARY KEY,
  last_version bigint NOT NULL
);

CREATE TABLE room_keys_versions (
  user_id text NOT NULL,
  version bigint NOT NULL,
  algorithm text NOT NULL,
  auth_data jsonb NOT NULL,
  etag bigint NOT NULL,
  key_count bigint NOT NULL,
  PRIMARY KEY (user_id, version)
);

CREATE TABLE room_keys (
  user_id text NOT NULL,
  version bigint NOT NULL,
  room_id text NOT NULL,
  session_id text NOT NULL,
  first_message_index bigint NOT NULL,
  forwarded_count bigint NOT NULL,
  is_verified boolean NOT NULL,
  session_data jsonb NOT NULL,
  PRIMARY KEY (user_id, version, room_id, session_id)
);
`,
  },
  {
    // The content repository (media/): each local media item, bytes included, in the database
    // so that every client-api replica serves every upload without a shared disk, and the
    // embedded (PGlite) server keeps everything in its one data folder. A row without
    // uploaded_ts is an id reserved by POST /_matrix/media/v1/create, waiting for its bytes.
    // authenticated: uploaded while the unauthenticated endpoints were frozen (served only by
    // /_matrix/client/v1/media), as Synapse's local_media_repository.authenticated.
    id: 'client_api_media_0001_local_media',
    sql: `
CREATE TABLE local_media (
  media_id text PRIMARY KEY,
  user_id text NOT NULL,
  created_ts bigint NOT NULL,
  uploaded_ts bigint,
  content_type text,
  upload_name text,
  content_length bigint,
  content bytea,
  authenticated boolean NOT NULL
);
CREATE INDEX local_media_pending_by_user ON local_media (user_id, created_ts) WHERE uploaded_ts IS NULL;
`,
  },
  {
    // Remote media (media/remote-media.*): another server's media fetched over federation for
    // our users, kept so a second download does not ask again (Synapse's remote_media_cache).
    // Thumbnails fetched from the remote are kept apart, per requested size and method.
    // authenticated: fetched while the unauthenticated endpoints were frozen (as local_media).
    id: 'client_api_remote_media_0001_cache',
    sql: `
CREATE TABLE remote_media (
  server_name text NOT NULL,
  media_id text NOT NULL,
  fetched_ts bigint NOT NULL,
  content_type text,
  upload_name text,
  content_length bigint NOT NULL,
  content bytea NOT NULL,
  authenticated boolean NOT NULL,
  PRIMARY KEY (server_name, media_id)
);
CREATE TABLE remote_media_thumbnails (
  server_name text NOT NULL,
  media_id text NOT NULL,
  width bigint NOT NULL,
  height bigint NOT NULL,
  method text NOT NULL,
  animated text NOT NULL,
  fetched_ts bigint NOT NULL,
  content_type text NOT NULL,
  content bytea NOT NULL,
  PRIMARY KEY (server_name, media_id, width, height, method, animated)
);
`,
  },
  {
    // The push sender lease (push/push-lease.ts): one row naming the client-api replica that
    // sends push notifications until expires_at_ms (database clock, ms); renewed while it lives.
    id: 'client_api_push_sender_0001_lease',
    sql: `
CREATE TABLE push_sender_lease (
  lease text PRIMARY KEY,
  owner text NOT NULL,
  expires_at_ms bigint NOT NULL
);
`,
  },
  {
    // Refresh tokens (spec: POST /refresh) and registration tokens (m.login.registration_token).
    // An access token issued with a refresh token expires (expires_ts) and names that refresh
    // token. A refresh token stays usable until its successor (next_token_hash) or the
    // successor's access token is first used; then the successor's prev_token_hash is cleared
    // and the predecessor goes with its access tokens (auth/access-tokens.service.ts).
    id: 'client_api_refresh_0001_refresh_and_registration_tokens',
    sql: `
ALTER TABLE access_tokens ADD COLUMN expires_ts bigint;
ALTER TABLE access_tokens ADD COLUMN refresh_token_hash text;
CREATE INDEX access_tokens_by_refresh_token ON access_tokens (refresh_token_hash);
CREATE TABLE refresh_tokens (
  token_hash text PRIMARY KEY,
  user_id text NOT NULL,
  device_id text NOT NULL,
  created_ts bigint NOT NULL,
  prev_token_hash text,
  next_token_hash text
);
CREATE INDEX refresh_tokens_by_device ON refresh_tokens (user_id, device_id);
CREATE TABLE registration_tokens (
  token text PRIMARY KEY,
  uses_allowed integer,
  pending integer NOT NULL DEFAULT 0,
  completed integer NOT NULL DEFAULT 0,
  expiry_time bigint,
  created_ts bigint NOT NULL
);
ALTER TABLE uia_sessions ADD COLUMN registration_token text;
`,
  },
  {
    // URL previews (media/url-preview/): the OpenGraph answer for a URL, fetched at fetched_ts,
    // served until expires_ts (then deleted). History-aware as Synapse's url cache: a request's
    // `ts` picks the preview fetched closest before it.
    id: 'client_api_url_preview_0001_cache',
    sql: `
CREATE TABLE url_previews (
  url text NOT NULL,
  fetched_ts bigint NOT NULL,
  expires_ts bigint NOT NULL,
  og text NOT NULL,
  PRIMARY KEY (url, fetched_ts)
);
CREATE INDEX url_previews_expires ON url_previews (expires_ts);
`,
  },
  {
    // Token lifetimes as Synapse (auth/refresh-tokens.service.ts): a refresh token may expire
    // (refresh_token_lifetime) and belongs to a session that may end (session_lifetime, carried
    // along the chain in session_expires_ts; expires_ts is already capped by it). The partial
    // indexes serve the periodic cleanup of expired rows
    // (auth/token-cleanup.service.ts), which deletes in small batches by expiry.
    id: 'client_api_refresh_0002_token_lifetimes',
    sql: `
ALTER TABLE refresh_tokens ADD COLUMN expires_ts bigint;
ALTER TABLE refresh_tokens ADD COLUMN session_expires_ts bigint;
CREATE INDEX access_tokens_by_expiry ON access_tokens (expires_ts) WHERE expires_ts IS NOT NULL;
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_ts) WHERE expires_ts IS NOT NULL;
`,
  },
  {
    // Device list updates over federation (federation/device-list-updates.ts): a local user's
    // rows that name a device form that user's m.device_list_update sequence (stream_id = the
    // row's position, prev_id = the user's previous such row), the same sequence GET
    // /_matrix/federation/v1/user/devices answers with. NULL: a change no device's EDU carries
    // (cross-signing keys go as m.signing_key_update), and other servers' users' changes.
    id: 'client_api_device_lists_0001_federation',
    sql: `
ALTER TABLE device_list_changes ADD COLUMN device_id text;
CREATE INDEX device_list_changes_of_devices ON device_list_changes (user_id, stream_position) WHERE device_id IS NOT NULL;
`,
  },
  {
    // Synapse's admin API reports whether a deactivated account was erased (its profile deleted).
    id: 'client_api_admin_0001_erased_accounts',
    sql: `ALTER TABLE accounts ADD COLUMN erased boolean NOT NULL DEFAULT false;`,
  },
];
