import { Inject, Injectable } from '@nestjs/common';
import type { Db } from '@tessera/storage';
import type { Requester } from '../auth/access-tokens.service.js';
import { CLIENT_API_DB } from '../tokens.js';
import type { JsonBody } from '../validation.js';
import { readPusherRequest } from './pusher-request.js';
import { pushersStore, type PusherView } from './pushers.store.js';

/**
 * A user's pushers (spec "Push notifications": GET /pushers, POST /pushers/set). A pusher is
 * tied to the device whose access token set it and is deleted with that device (logout,
 * device deletion: see accountsStore.deleteDevices), as Synapse does.
 *
 * Only the registrations are kept here: PushSender (push-sender.ts) sends to the push gateways.
 */
@Injectable()
export class PushersService {
  constructor(@Inject(CLIENT_API_DB) private readonly db: Db) {}

  async list(userId: string): Promise<{ pushers: PusherView[] }> {
    return { pushers: await pushersStore.list(this.db, userId) };
  }

  /** Checked in full before anything is written: a refused request changes nothing. */
  async set(requester: Requester, body: JsonBody): Promise<void> {
    const request = readPusherRequest(body);
    if (request.delete) {
      await pushersStore.delete(this.db, requester.userId, request.appId, request.pushkey);
      return;
    }
    const { pusher, append } = request;
    await this.db.transaction(async (tx) => {
      // Spec (append): "Otherwise, the homeserver must remove any other pushers with the same App ID and pushkey for different users."
      if (!append) await pushersStore.deleteOtherUsers(tx, requester.userId, pusher.app_id, pusher.pushkey);
      await pushersStore.upsert(tx, requester.userId, requester.deviceId, pusher);
    });
  }
}
