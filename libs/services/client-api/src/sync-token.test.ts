import { describe, expect, it } from 'vitest';
import { decodeSyncToken, encodeSyncToken, tagSyncToken } from './sync-token.js';

describe('sync tokens', () => {
  it('round-trips positions and reads short tokens with zeros', () => {
    const positions = { events: 42, account_data: 7, to_device: 3, device_lists: 9, receipts: 0, typing: 12, presence: 5 };
    expect(encodeSyncToken(positions)).toBe('s42_7_3_9_0_12_5');
    expect(decodeSyncToken('s42_7_3_9_0_12_5')).toEqual(positions);
    expect(decodeSyncToken('s5')).toEqual({ events: 5, account_data: 0, to_device: 0, device_lists: 0, receipts: 0, typing: 0, presence: 0 });
    for (const bad of ['', 's', 'x1_2', 's1__2', 's1_2_3_4_5_6_7_8', 's-1', 's1~', 's1~A', 's1~a~b', 's1_~a']) expect(decodeSyncToken(bad), bad).toBeUndefined();
  });

  it('reads a tagged token as its positions', () => {
    const positions = { events: 42, account_data: 7, to_device: 3, device_lists: 9, receipts: 0, typing: 12, presence: 5 };
    const tagged = tagSyncToken(encodeSyncToken(positions), 'k2x9q1');
    expect(tagged).toBe('s42_7_3_9_0_12_5~k2x9q1');
    expect(decodeSyncToken(tagged)).toEqual(positions);
    expect(decodeSyncToken('s5~0')).toEqual({ events: 5, account_data: 0, to_device: 0, device_lists: 0, receipts: 0, typing: 0, presence: 0 });
  });
});
