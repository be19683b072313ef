// Runs before `npm start` and `npm test` (prestart/pretest): on a fresh clone, installs the
// locked dependencies first, so the README's two commands do everything. Plain Node, no
// dependencies of its own; a no-op once node_modules holds what the scripts need.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const needed = ['tsx', 'esbuild', 'vitest', '@nestjs/core', '@electric-sql/pglite'];
if (!needed.every((name) => existsSync(`${root}node_modules/${name}/package.json`))) {
  console.log('tessera: installing dependencies (npm ci) before the first run...');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const result = spawnSync(npm, ['ci'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}
