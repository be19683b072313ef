import { describe, expect, it } from 'vitest';
import { hashPassword, verifyPassword } from './password-hash.js';

describe('password hashing (scrypt)', () => {
  it('verifies the right password only, with salt and parameters stored in the hash', async () => {
    const a = await hashPassword('hunter2', 1024);
    const b = await hashPassword('hunter2', 1024);
    expect(a).toMatch(/^scrypt\$1024\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    expect(a).not.toBe(b);
    expect(await verifyPassword('hunter2', a)).toBe(true);
    expect(await verifyPassword('hunter3', a)).toBe(false);
    expect(await verifyPassword('hunter2', null)).toBe(false);
    expect(await verifyPassword('hunter2', 'garbage')).toBe(false);
  });
});
