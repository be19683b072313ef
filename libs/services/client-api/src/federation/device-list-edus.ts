/**
 * The two device list EDUs (spec, Server-Server API "Device Management" and "End-to-End
 * Encryption"): built from our rows for other servers, and checked when they come from one.
 * Pure functions of data; device-list-updates.ts does the reading, publishing and recording.
 */
import { crossSigningKeyAsSeenBy } from '@tessera/protocol';
import { isPlainObject, isUserId, serverNameOf } from '../validation.js';

type Json = Record<string, unknown>;

export const DEVICE_LIST_UPDATE = 'm.device_list_update';
export const SIGNING_KEY_UPDATE = 'm.signing_key_update';

/** One recorded change of one device: its device_lists position is its stream_id. */
export interface DeviceChange {
  position: number;
  deviceId: string;
}

/** A device as it is now; absent from the map when it was deleted. */
export interface DeviceNow {
  displayName: string | null;
  /** The signed device_keys object as uploaded; null before the device uploads keys. */
  keys: Json | null;
}

/**
 * m.device_list_update contents for consecutive changes of one user's devices, in stream
 * order. Each names the one before it in prev_id, and the first names `prevId` (the user's
 * change before these), so a receiver that missed one sees the gap and resyncs with GET
 * /user/devices. Each carries the device as it is now (a later change in the same batch
 * shows the same state, which is what the receiver ends with either way).
 */
export function deviceListUpdateContents(userId: string, changes: readonly DeviceChange[], prevId: number | null, devices: ReadonlyMap<string, DeviceNow>): Json[] {
  const ordered = [...changes].sort((a, b) => a.position - b.position);
  let prev = prevId;
  return ordered.map(({ position, deviceId }) => {
    const content: Json = { user_id: userId, device_id: deviceId, stream_id: position, prev_id: prev === null ? [] : [prev] };
    prev = position;
    const device = devices.get(deviceId);
    if (!device) return { ...content, deleted: true };
    if (device.displayName !== null) content.device_display_name = device.displayName;
    if (device.keys !== null) content.keys = device.keys;
    return content;
  });
}

/** m.signing_key_update content: the user's master and self-signing keys (never the user-signing key, which only its owner may see). */
export function signingKeyUpdateContent(userId: string, crossSigning: Readonly<Record<string, Json>>): Json | undefined {
  const content: Json = { user_id: userId };
  if (crossSigning.master) content.master_key = crossSigningKeyAsSeenBy(crossSigning.master, userId);
  if (crossSigning.self_signing) content.self_signing_key = crossSigning.self_signing;
  return content.master_key || content.self_signing_key ? content : undefined;
}

/** What an inbound device list EDU is about, or why it is dropped. */
export type InboundDeviceListEdu = { userId: string } | { dropped: string };

/**
 * Checks an inbound m.device_list_update or m.signing_key_update from `origin`. A server
 * speaks only for its own users, and never for ours.
 */
export function readDeviceListEdu(eduType: string, content: Json, origin: string, ourServer: string): InboundDeviceListEdu {
  const userId = content.user_id;
  if (!isUserId(userId)) return { dropped: 'user_id is not a user id' };
  if (serverNameOf(userId) !== origin || origin === ourServer) return { dropped: `${origin} may not speak for ${userId}` };
  if (eduType === DEVICE_LIST_UPDATE) {
    const { device_id: deviceId, stream_id: streamId, prev_id: prevId, deleted, device_display_name: name, keys } = content;
    if (typeof deviceId !== 'string' || deviceId === '') return { dropped: 'device_id must be a non-empty string' };
    if (!Number.isSafeInteger(streamId)) return { dropped: 'stream_id must be an integer' };
    if (prevId !== undefined && !(Array.isArray(prevId) && prevId.every((id) => Number.isSafeInteger(id)))) return { dropped: 'prev_id must be a list of integers' };
    if (deleted !== undefined && typeof deleted !== 'boolean') return { dropped: 'deleted must be a boolean' };
    if (name !== undefined && typeof name !== 'string') return { dropped: 'device_display_name must be a string' };
    if (keys !== undefined && !(isPlainObject(keys) && keys.user_id === userId && keys.device_id === deviceId)) {
      return { dropped: 'keys must be the device keys of this user and device' };
    }
    return { userId };
  }
  if (eduType === SIGNING_KEY_UPDATE) {
    const keys = [content.master_key, content.self_signing_key].filter((key) => key !== undefined);
    if (keys.length === 0) return { dropped: 'neither master_key nor self_signing_key' };
    if (!keys.every((key) => isPlainObject(key) && key.user_id === userId)) return { dropped: 'master_key and self_signing_key must be cross-signing keys of this user' };
    return { userId };
  }
  return { dropped: `not a device list EDU: ${eduType}` };
}
