import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createPgliteDb } from './pglite-db.js';
import type { Db } from './db.js';

/**
 * The data file sizes kept in memory (pglite-file-sizes.ts) must always be the files' real
 * sizes. PostgreSQL uses a relation's length (lseek SEEK_END) to scan it, reading every block
 * up to it: a size kept too large fails the scan ("could not read blocks"). It also extends the
 * relation at that length: a size kept too small would write new rows over existing blocks and
 * lose rows, which the counts would show. Each way a file shrinks is followed by a scan.
 */
describe('PGlite data file sizes kept in memory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-pglite-sizes-'));
  let db: Db;
  afterAll(async () => {
    await db?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const count = async () => Number((await db.query<{ n: number | string }>('SELECT count(*) AS n FROM sized')).rows[0]!.n);

  it('stay right through growth, VACUUM truncation, TRUNCATE, DROP and CREATE, and a reopening', async () => {
    db = await createPgliteDb({ dataDir: dir });
    await db.exec('CREATE TABLE sized (id int PRIMARY KEY, body text); CREATE INDEX sized_body ON sized (body)');
    // Planned statements (each asks the sizes) between growing writes.
    for (let i = 0; i < 2000; i++) {
      await db.query('INSERT INTO sized VALUES ($1, $2)', [i, `row ${i} ${'x'.repeat(200)}`]);
      if (i % 250 === 0) await db.query('SELECT count(*) FROM sized WHERE id = $1', [i]);
    }
    expect(await count()).toBe(2000);

    // VACUUM gives the empty pages at the end back with ftruncate: the scan right after reads up to the new end.
    await db.query('DELETE FROM sized WHERE id >= 200');
    await db.exec('VACUUM sized');
    expect(await count()).toBe(200);
    await db.query('INSERT INTO sized SELECT g, $1 FROM generate_series(5000, 5999) g', ['y'.repeat(300)]);
    expect(await count()).toBe(1200);

    await db.exec('TRUNCATE sized');
    expect(await count()).toBe(0);
    await db.query('INSERT INTO sized VALUES (1, $1)', ['z']);
    expect(await count()).toBe(1);
    await db.exec('DROP TABLE sized; CREATE TABLE sized (id int PRIMARY KEY, body text)');
    await db.query('INSERT INTO sized SELECT g, $1 FROM generate_series(1, 500) g', ['w'.repeat(100)]);
    expect(await count()).toBe(500);

    // A reopened folder learns the sizes afresh.
    await db.close();
    db = await createPgliteDb({ dataDir: dir });
    await db.query('DELETE FROM sized WHERE id > 50');
    await db.exec('VACUUM sized');
    expect(await count()).toBe(50);
    await db.query('INSERT INTO sized SELECT g, $1 FROM generate_series(501, 900) g', ['v'.repeat(100)]);
    expect(await count()).toBe(450);
  });
});
