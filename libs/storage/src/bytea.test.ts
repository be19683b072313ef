import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBytea, serializeBytea } from './bytea.js';
import type { Db } from './db.js';
import { createPgliteDb } from './pglite-db.js';

describe('bytea on PGlite', () => {
  let db: Db;
  beforeAll(async () => {
    db = await createPgliteDb();
    await db.exec('CREATE TABLE blobs (id int PRIMARY KEY, content bytea)');
  });
  afterAll(async () => {
    await db?.close();
  });

  it('round-trips every byte value, an empty value and a view into a larger buffer', async () => {
    const all = Uint8Array.from({ length: 512 }, (_, i) => i % 256);
    const view = new Uint8Array(all.buffer, 3, 7);
    const cases = [all, new Uint8Array(0), view, Buffer.from('héllo')];
    for (const [id, value] of cases.entries()) {
      await db.query('INSERT INTO blobs (id, content) VALUES ($1, $2)', [id, value]);
      const { rows } = await db.query<{ content: Uint8Array; hex: string }>("SELECT content, encode(content, 'hex') AS hex FROM blobs WHERE id = $1", [id]);
      expect(rows[0]!.content).toBeInstanceOf(Uint8Array);
      expect([...rows[0]!.content]).toEqual([...value]);
      // What PostgreSQL stored, independently of our parser.
      expect(rows[0]!.hex).toBe(Buffer.from(value).toString('hex'));
    }
  });

  it('refuses what is not bytes', () => {
    expect(() => serializeBytea('text')).toThrow(TypeError);
    expect(() => parseBytea('0102')).toThrow(TypeError);
    expect(serializeBytea(Uint8Array.from([0, 255]))).toBe('\\x00ff');
  });
});
