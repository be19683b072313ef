import { Inject, Injectable } from '@nestjs/common';
import type { Db } from '@tessera/storage';
import type { Requester } from '../auth/access-tokens.service.js';
import { UserInteractiveAuthService } from '../auth/user-interactive-auth.service.js';
import { badJson, missingParam, notFound } from '../errors.js';
import { DeviceListUpdates } from '../federation/device-list-updates.js';
import { accountsStore, recordDeviceListChange, type DeviceRow } from '../storage/accounts-store.js';
import { CLIENT_API_DB } from '../tokens.js';
import type { JsonBody } from '../validation.js';
import { AccountsService } from './accounts.service.js';

export interface DeviceView {
  device_id: string;
  display_name?: string;
  last_seen_ip?: string;
  last_seen_ts?: number;
}

function view(row: DeviceRow): DeviceView {
  const device: DeviceView = { device_id: row.device_id };
  if (row.display_name !== null) device.display_name = row.display_name;
  if (row.last_seen_ip !== null) device.last_seen_ip = row.last_seen_ip;
  if (row.last_seen_ts !== null) device.last_seen_ts = row.last_seen_ts;
  return device;
}

/** /devices and /delete_devices: a user's view of their own sessions. */
@Injectable()
export class DevicesService {
  constructor(
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(UserInteractiveAuthService) private readonly uia: UserInteractiveAuthService,
    @Inject(AccountsService) private readonly accounts: AccountsService,
    @Inject(DeviceListUpdates) private readonly deviceLists: DeviceListUpdates,
  ) {}

  async list(requester: Requester): Promise<{ devices: DeviceView[] }> {
    return { devices: (await accountsStore.listDevices(this.db, requester.userId)).map(view) };
  }

  async get(requester: Requester, deviceId: string): Promise<DeviceView> {
    const row = await accountsStore.getDevice(this.db, requester.userId, deviceId);
    if (!row) throw notFound(`No device ${deviceId}`);
    return view(row);
  }

  async rename(requester: Requester, deviceId: string, body: JsonBody): Promise<void> {
    const name = body.display_name;
    if (name !== undefined && name !== null && typeof name !== 'string') throw badJson('"display_name" must be a string');
    if (typeof name === 'string' && name.length > 100) throw badJson('"display_name" is longer than 100 characters');
    // The display name is part of what keys/query reports, so other users' clients learn of it.
    const position = await this.db.transaction(async (tx) => {
      if (!(await accountsStore.renameDevice(tx, requester.userId, deviceId, name ?? null))) throw notFound(`No device ${deviceId}`);
      return recordDeviceListChange(tx, requester.userId, deviceId);
    });
    await this.deviceLists.changed(requester.userId, [position]);
  }

  async delete(requester: Requester, deviceId: string, body: JsonBody): Promise<void> {
    await this.uia.require(body, 'delete_device', requester.userId);
    // The spec documents only 200 and 401 here; as Synapse, deleting an unknown device succeeds.
    await this.accounts.deleteDevices(requester.userId, [deviceId]);
  }

  async deleteMany(requester: Requester, body: JsonBody): Promise<void> {
    const devices = body.devices;
    if (devices === undefined) throw missingParam('missing "devices"');
    if (!Array.isArray(devices) || !devices.every((d) => typeof d === 'string')) throw badJson('"devices" must be a list of device ids');
    await this.uia.require(body, 'delete_devices', requester.userId);
    await this.accounts.deleteDevices(requester.userId, devices as string[]);
  }
}
