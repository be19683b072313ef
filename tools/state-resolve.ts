/**
 * state-resolve: resolve a room's state from files of PDUs, for operators debugging a room.
 *
 *   npm run --silent state-resolve -- FILE...
 *
 * Each FILE holds a JSON array of PDUs in the state-res fixtures' form (each with its
 * event_id, edges as event ids). The files are batches, resolved in order as the per-batch
 * harness does: the state so far together with one one-entry state map per PDU of the batch.
 * The room version comes from the create event. Prints the resolved state as a JSON array of
 * {"type", "state_key", "event_id"} sorted by type then state_key. Bad input: one line on
 * stderr, exit code 2.
 */
import { readFileSync } from 'node:fs';
import {
  eventSourceOf,
  getRoomVersion,
  isKnownRoomVersion,
  resolveBatches,
  splitStateKey,
  type RoomEvent,
} from '@tessera/protocol';

class InputError extends Error {}

function isObject(v: unknown): v is Record<string, any> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function checkPdu(pdu: unknown, where: string): RoomEvent {
  if (!isObject(pdu)) throw new InputError(`${where}: a PDU is not a JSON object`);
  const label = `${where} (${typeof pdu.event_id === 'string' ? pdu.event_id : 'no event_id'})`;
  const need = (ok: boolean, field: string, what: string) => {
    if (!ok) throw new InputError(`${label}: field "${field}" is missing or not ${what}`);
  };
  const isIdList = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');
  need(typeof pdu.event_id === 'string', 'event_id', 'a string');
  need(typeof pdu.type === 'string', 'type', 'a string');
  need(typeof pdu.sender === 'string', 'sender', 'a string');
  need(isObject(pdu.content), 'content', 'an object');
  need(Number.isInteger(pdu.origin_server_ts), 'origin_server_ts', 'an integer');
  need(isIdList(pdu.prev_events), 'prev_events', 'a list of event ids');
  need(isIdList(pdu.auth_events), 'auth_events', 'a list of event ids');
  need(pdu.state_key === undefined || typeof pdu.state_key === 'string', 'state_key', 'a string');
  // The create event of room version 12 has no room_id; every other event has one.
  need(pdu.type === 'm.room.create' || typeof pdu.room_id === 'string', 'room_id', 'a string');
  return pdu as RoomEvent;
}

function readBatch(file: string): RoomEvent[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new InputError(`${file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new InputError(`${file}: not JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(json)) throw new InputError(`${file}: expected a JSON array of PDUs`);
  return json.map((pdu, i) => checkPdu(pdu, `${file}: PDU #${i}`));
}

function stateResolveCli(files: string[]): string {
  if (files.length === 0) throw new InputError('usage: state-resolve FILE... (each file a JSON array of PDUs)');
  const batches = files.map(readBatch);
  const pdus = batches.flat();
  const ids = new Set<string>();
  for (const pdu of pdus) {
    if (ids.has(pdu.event_id)) throw new InputError(`event ${pdu.event_id} appears twice`);
    ids.add(pdu.event_id);
  }
  const create = pdus.find((p) => p.type === 'm.room.create' && p.state_key === '');
  if (!create) throw new InputError('no m.room.create event: the room version is unknown');
  // The spec's default when a create event names no version.
  const versionId = create.content.room_version ?? '1';
  if (!isKnownRoomVersion(versionId)) throw new InputError(`unknown room version ${JSON.stringify(versionId)} in ${create.event_id}`);
  const state = resolveBatches(getRoomVersion(versionId), batches, eventSourceOf(pdus));
  const rows = [...state]
    .map(([key, event_id]) => {
      const [type, state_key] = splitStateKey(key);
      return { type, state_key, event_id };
    })
    .sort((a, b) => (a.type !== b.type ? (a.type < b.type ? -1 : 1) : a.state_key < b.state_key ? -1 : a.state_key > b.state_key ? 1 : 0));
  return JSON.stringify(rows, null, 2);
}

try {
  process.stdout.write(stateResolveCli(process.argv.slice(2)) + '\n');
} catch (e) {
  const message = e instanceof InputError ? e.message : `internal error: ${(e as Error).message ?? e}`;
  process.stderr.write(`state-resolve: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
  process.exitCode = e instanceof InputError ? 2 : 1;
}
