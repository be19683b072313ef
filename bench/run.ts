/**
 * Runs every bench/*.bench.ts in turn. A bench file exports `main()` (awaited here) and prints
 * lines `BENCH <name> <value> <unit>`; a file without `main` does its work when imported.
 * An argument filters by file name: `npm run bench -- protocol`.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const filter = process.argv[2];
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts') && (!filter || f.includes(filter)))
  .sort();

let failed = 0;
for (const file of files) {
  console.log(`# ${file}`);
  // Each bench gets the environment it started with: a bench that sets variables for the
  // processes it spawns (e.g. FEDERATION_CA_FILE of a test PKI it deletes afterwards) must not
  // leak them into the next bench's processes.
  const env = { ...process.env };
  try {
    const mod = (await import(pathToFileURL(join(here, file)).href)) as { main?: () => unknown };
    if (typeof mod.main === 'function') await mod.main();
  } catch (e) {
    failed++;
    console.error(`# ${file} failed: ${(e as Error).stack ?? e}`);
  } finally {
    for (const name of Object.keys(process.env)) if (!(name in env)) delete process.env[name];
    Object.assign(process.env, env);
  }
}
if (files.length === 0) console.log('# no bench files matched');
process.exitCode = failed > 0 ? 1 : 0;
