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
  try {
    const mod = (await import(pathToFileURL(join(here, file)).href)) as { main?: () => unknown };
    if (typeof mod.main === 'function') await mod.main();
  } catch (e) {
    failed++;
    console.error(`# ${file} failed: ${(e as Error).stack ?? e}`);
  }
}
if (files.length === 0) console.log('# no bench files matched');
process.exitCode = failed > 0 ? 1 : 0;
