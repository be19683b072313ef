import { describe, expect, it } from 'vitest';
import { getRoomVersion } from '@tessera/protocol';
import { integerPowerLevels, newRoomPowerLevels, restrictedOldRoomPowerLevels } from './room-upgrade-power.js';

const ALICE = '@alice:example.org';
const BOB = '@bob:example.org';

describe('integerPowerLevels', () => {
  it('reads v1-9 string and fractional levels as integers and drops what does not parse', () => {
    const content = { ban: '60', kick: 'lots', invite: 25.7, users: { [ALICE]: '100', [BOB]: null }, events: { 'm.room.name': ' 40 ' }, notifications: { room: '20' }, extra: 'kept' };
    expect(integerPowerLevels(content, getRoomVersion('9'))).toEqual({
      ban: 60, invite: 25, users: { [ALICE]: 100 }, events: { 'm.room.name': 40 }, notifications: { room: 20 }, extra: 'kept',
    });
  });

  it('keeps only integers from v10 on', () => {
    expect(integerPowerLevels({ ban: '60', kick: 50, users: { [ALICE]: 100, [BOB]: '50' } }, getRoomVersion('10'))).toEqual({ kick: 50, users: { [ALICE]: 100 } });
  });
});

describe('newRoomPowerLevels', () => {
  const old = { users: { [ALICE]: 100, [BOB]: 50 }, users_default: 0, state_default: 50, ban: 50, events: { 'm.room.tombstone': 50, 'm.room.power_levels': 100 } };
  const none = { additionalCreators: [], upgraderWasPrivilegedCreator: false };

  it('raises the upgrading user to the highest level a copied event or a ban needs, for the copy only', () => {
    const { initial, final } = newRoomPowerLevels(old, BOB, getRoomVersion('11'), none);
    expect(initial.users).toEqual({ [ALICE]: 100, [BOB]: 100 });
    expect(final.users).toEqual(old.users);
  });

  it('needs no raise for a user already that powerful', () => {
    const levels = newRoomPowerLevels(old, ALICE, getRoomVersion('11'), none);
    expect(levels.initial).toBe(levels.final);
    expect(levels.final.users).toEqual(old.users);
  });

  it('leaves the creators out of users in v12, unraised', () => {
    const levels = newRoomPowerLevels(old, ALICE, getRoomVersion('12'), { additionalCreators: [BOB], upgraderWasPrivilegedCreator: false });
    expect(levels.initial).toBe(levels.final);
    expect(levels.final.users).toEqual({});
  });

  it('keeps a v12 creator at the top level when the new version has no privileged creators', () => {
    const fromV12 = { users: { [BOB]: 150 }, events: { 'm.room.power_levels': 100 } };
    expect(newRoomPowerLevels(fromV12, ALICE, getRoomVersion('11'), { additionalCreators: [], upgraderWasPrivilegedCreator: true }).final.users).toEqual({ [BOB]: 150, [ALICE]: 150 });
  });
});

describe('restrictedOldRoomPowerLevels', () => {
  it('lifts events_default and invite to the greater of 50 and users_default + 1', () => {
    expect(restrictedOldRoomPowerLevels({ users_default: 0, events_default: 0 })).toEqual({ users_default: 0, events_default: 50, invite: 50 });
    expect(restrictedOldRoomPowerLevels({ users_default: 70, events_default: 0, invite: 100 })).toEqual({ users_default: 70, events_default: 71, invite: 100 });
  });

  it('changes nothing when both are already high enough', () => {
    expect(restrictedOldRoomPowerLevels({ events_default: 50, invite: 60 })).toBeUndefined();
  });
});
