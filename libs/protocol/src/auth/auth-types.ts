/**
 * The auth events selection of the server-server spec: which (type, state_key) pairs of the
 * state before an event it must cite in `auth_events`.
 */
import type { RoomVersion } from '../room-versions.js';

export interface AuthSelectable {
  type: string;
  sender: string;
  state_key?: string;
  content: Record<string, any>;
}

export function authTypesForEvent(event: AuthSelectable, roomVersion: RoomVersion): Array<[type: string, stateKey: string]> {
  if (event.type === 'm.room.create') return [];
  const types: Array<[string, string]> = [];
  const seen = new Set<string>();
  const add = (type: string, key: string) => {
    const k = `${type}\u0000${key}`;
    if (!seen.has(k)) {
      seen.add(k);
      types.push([type, key]);
    }
  };
  // v12 (MSC4291): the room id names the create event, which is therefore never cited.
  if (!roomVersion.roomIdIsCreateEventHash) add('m.room.create', '');
  add('m.room.power_levels', '');
  add('m.room.member', event.sender);
  if (event.type === 'm.room.member' && typeof event.state_key === 'string') {
    const content = event.content ?? {};
    const membership = content.membership;
    add('m.room.member', event.state_key);
    if (membership === 'join' || membership === 'invite' || membership === 'knock') add('m.room.join_rules', '');
    const token = content.third_party_invite?.signed?.token;
    if (membership === 'invite' && typeof token === 'string') add('m.room.third_party_invite', token);
    const authoriser = content.join_authorised_via_users_server;
    if (roomVersion.restrictedJoinRule && typeof authoriser === 'string') {
      add('m.room.member', authoriser);
    }
  }
  return types;
}
