import { badJson, invalidParam, MatrixError, missingParam } from '../errors.js';
import { isPlainObject, optionalBoolean, optionalString, type JsonBody } from '../validation.js';
import type { PusherView } from './pushers.store.js';

/** Spec: "Max length, 64 chars" (app_id) and "Max length, 512 bytes" (pushkey). */
const MAX_APP_ID_CHARS = 64;
const MAX_PUSHKEY_BYTES = 512;

/** The only path a push gateway serves notifications on (spec: data.url "MUST be ... with a path of /_matrix/push/v1/notify"). */
const NOTIFY_PATH = '/_matrix/push/v1/notify';

/** POST /pushers/set, read: delete one pusher (kind null) or set one. */
export type PusherRequest = { delete: true; appId: string; pushkey: string } | { delete: false; pusher: PusherView; append: boolean };

/**
 * Reads and checks a POST /pushers/set body. Missing required keys: M_MISSING_PARAM naming
 * all of them (as the spec's example); a value of the wrong JSON type: M_BAD_JSON; a value
 * of the right type that cannot be used (kind, lengths, data.url): M_INVALID_PARAM.
 */
export function readPusherRequest(body: JsonBody): PusherRequest {
  const deleting = body.kind === null;
  const required = deleting ? ['kind', 'app_id', 'pushkey'] : ['kind', 'app_id', 'pushkey', 'app_display_name', 'device_display_name', 'lang', 'data'];
  // kind may be null (delete); any other key given as null counts as absent.
  const missing = required.filter((key) => body[key] === undefined || (body[key] === null && key !== 'kind'));
  if (missing.length > 0) throw missingParam(`Missing parameters: ${missing.join(', ')}`);

  const appId = string(body, 'app_id');
  const pushkey = string(body, 'pushkey');
  if (appId === '' || [...appId].length > MAX_APP_ID_CHARS) throw invalidParam(`"app_id" must be 1 to ${MAX_APP_ID_CHARS} characters`);
  if (pushkey === '' || Buffer.byteLength(pushkey) > MAX_PUSHKEY_BYTES) throw invalidParam(`"pushkey" must be 1 to ${MAX_PUSHKEY_BYTES} bytes`);
  if (deleting) return { delete: true, appId, pushkey };

  const kind = string(body, 'kind');
  const append = optionalBoolean(body, 'append') ?? false;
  const profileTag = optionalString(body, 'profile_tag');
  const data = body.data;
  if (!isPlainObject(data)) throw badJson('"data" must be a JSON object');
  if (data.format !== undefined && typeof data.format !== 'string') throw badJson('"data.format" must be a string');

  if (kind === 'http') {
    checkGatewayUrl(data.url);
  } else if (kind === 'email') {
    // As Synapse: an email pusher needs the address bound to the account, and this server binds none.
    throw new MatrixError(400, 'M_THREEPID_NOT_FOUND', 'No email address is bound to your account, so there is nowhere to email notifications');
  } else {
    throw invalidParam(`Unknown pusher kind "${kind}": use "http" (or null to delete the pusher)`);
  }

  const pusher: PusherView = {
    pushkey,
    kind,
    app_id: appId,
    app_display_name: string(body, 'app_display_name'),
    device_display_name: string(body, 'device_display_name'),
    lang: string(body, 'lang'),
    data,
  };
  if (profileTag !== undefined) pusher.profile_tag = profileTag;
  return { delete: false, pusher, append };
}

function string(body: JsonBody, key: string): string {
  const value = body[key];
  if (typeof value !== 'string') throw badJson(`"${key}" must be a string`);
  return value;
}

/** data.url of an http pusher: an http(s) URL of a push gateway's notify endpoint (Synapse checks the path as well). */
function checkGatewayUrl(url: unknown): void {
  if (url === undefined || url === null) throw missingParam('"data.url" is required for an http pusher');
  if (typeof url !== 'string') throw badJson('"data.url" must be a string');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalidParam(`"data.url" is not a URL: ${url}`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw invalidParam('"data.url" must be an https (or http) URL');
  if (parsed.pathname !== NOTIFY_PATH) throw invalidParam(`"data.url" must have the path ${NOTIFY_PATH}`);
}
