import { describe, expect, it } from 'vitest';
import { deviceListUpdateContents, readDeviceListEdu, signingKeyUpdateContent, type DeviceNow } from './device-list-edus.js';

const dan = '@dan:remote.example';
const keysOf = (deviceId: string) => ({ user_id: dan, device_id: deviceId, algorithms: ['m.olm.v1.curve25519-aes-sha2'], keys: {}, signatures: {} });

describe('deviceListUpdateContents', () => {
  it('chains the updates in stream order, the first naming the change before them', () => {
    const devices = new Map<string, DeviceNow>([
      ['PHONE', { displayName: 'Phone', keys: keysOf('PHONE') }],
      ['LAPTOP', { displayName: null, keys: null }],
    ]);
    const contents = deviceListUpdateContents(dan, [{ position: 12, deviceId: 'LAPTOP' }, { position: 11, deviceId: 'PHONE' }], 7, devices);
    expect(contents).toEqual([
      { user_id: dan, device_id: 'PHONE', stream_id: 11, prev_id: [7], device_display_name: 'Phone', keys: keysOf('PHONE') },
      { user_id: dan, device_id: 'LAPTOP', stream_id: 12, prev_id: [11] },
    ]);
  });

  it('starts a sequence with an empty prev_id and marks devices that are gone as deleted', () => {
    expect(deviceListUpdateContents(dan, [{ position: 3, deviceId: 'GONE' }], null, new Map())).toEqual([
      { user_id: dan, device_id: 'GONE', stream_id: 3, prev_id: [], deleted: true },
    ]);
  });
});

describe('signingKeyUpdateContent', () => {
  const master = { user_id: dan, usage: ['master'], keys: { 'ed25519:m': 'm' } };
  const selfSigning = { user_id: dan, usage: ['self_signing'], keys: { 'ed25519:s': 's' } };
  const userSigning = { user_id: dan, usage: ['user_signing'], keys: { 'ed25519:u': 'u' } };

  it('carries the master and self-signing keys, never the user-signing key', () => {
    expect(signingKeyUpdateContent(dan, { master, self_signing: selfSigning, user_signing: userSigning })).toEqual({
      user_id: dan, master_key: master, self_signing_key: selfSigning,
    });
  });

  it('is nothing when there is no key to tell of', () => {
    expect(signingKeyUpdateContent(dan, { user_signing: userSigning })).toBeUndefined();
  });
});

describe('readDeviceListEdu', () => {
  const origin = 'remote.example';
  const read = (eduType: string, content: Record<string, unknown>) => readDeviceListEdu(eduType, content, origin, 'our.example');
  const update = { user_id: dan, device_id: 'PHONE', stream_id: 5, prev_id: [4], device_display_name: 'Phone', keys: keysOf('PHONE') };

  it('accepts a well-formed update about a user of its sender', () => {
    expect(read('m.device_list_update', update)).toEqual({ userId: dan });
    expect(read('m.device_list_update', { user_id: dan, device_id: 'OLD', stream_id: 6, deleted: true })).toEqual({ userId: dan });
    expect(read('m.signing_key_update', { user_id: dan, master_key: { user_id: dan, usage: ['master'], keys: {} } })).toEqual({ userId: dan });
  });

  it('drops EDUs about users of other servers, ours included', () => {
    expect(read('m.device_list_update', { ...update, user_id: '@eve:elsewhere.example' })).toHaveProperty('dropped');
    expect(readDeviceListEdu('m.device_list_update', { ...update, user_id: '@me:our.example' }, 'our.example', 'our.example')).toHaveProperty('dropped');
    expect(read('m.signing_key_update', { user_id: '@eve:elsewhere.example', master_key: { user_id: '@eve:elsewhere.example' } })).toHaveProperty('dropped');
  });

  it('drops malformed EDUs', () => {
    for (const bad of [
      { ...update, user_id: 'dan' },
      { ...update, device_id: '' },
      { ...update, device_id: 7 },
      { ...update, stream_id: '5' },
      { ...update, stream_id: 1.5 },
      { ...update, prev_id: 4 },
      { ...update, prev_id: ['4'] },
      { ...update, deleted: 'yes' },
      { ...update, device_display_name: {} },
      { ...update, keys: 'k' },
      { ...update, keys: keysOf('OTHER') },
    ]) {
      expect(read('m.device_list_update', bad), JSON.stringify(bad)).toHaveProperty('dropped');
    }
    expect(read('m.signing_key_update', { user_id: dan })).toHaveProperty('dropped');
    expect(read('m.signing_key_update', { user_id: dan, master_key: 'k' })).toHaveProperty('dropped');
    expect(read('m.signing_key_update', { user_id: dan, self_signing_key: { user_id: '@eve:elsewhere.example' } })).toHaveProperty('dropped');
    expect(read('m.typing', { user_id: dan })).toHaveProperty('dropped');
  });
});
