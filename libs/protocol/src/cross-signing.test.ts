import { describe, expect, it } from 'vitest';
import { crossSigningKeyAsSeenBy } from './cross-signing.js';

describe('crossSigningKeyAsSeenBy', () => {
  const key = { user_id: '@bob:x', usage: ['master'], keys: { 'ed25519:M': 'M' }, signatures: { '@bob:x': { 'ed25519:D': 's1' }, '@alice:x': { 'ed25519:U': 's2' }, '@carol:x': { 'ed25519:V': 's3' } } };

  it("keeps the owner's signatures and the viewer's, and no one else's", () => {
    expect(crossSigningKeyAsSeenBy(key, '@bob:x', '@alice:x').signatures).toEqual({ '@bob:x': { 'ed25519:D': 's1' }, '@alice:x': { 'ed25519:U': 's2' } });
    expect(crossSigningKeyAsSeenBy(key, '@bob:x').signatures).toEqual({ '@bob:x': { 'ed25519:D': 's1' } });
    expect(crossSigningKeyAsSeenBy(key, '@bob:x', '@bob:x').signatures).toEqual({ '@bob:x': { 'ed25519:D': 's1' } });
    expect(key.signatures['@carol:x']).toBeDefined(); // the stored object is not changed
  });
});
