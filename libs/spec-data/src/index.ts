/**
 * Where the Matrix spec reference data lives, for tests and tools: MATRIX_SPEC_DIR if set, else
 * ../shared/matrix-spec beside the repository (the canonical copy), else the vendored copy in
 * third_party/matrix-spec, so that a fresh clone on its own still tests against the spec.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));

function resolveSpecDir(): string {
  const candidates = [
    process.env.MATRIX_SPEC_DIR,
    join(repoRoot, '..', 'shared', 'matrix-spec'),
    join(repoRoot, 'third_party', 'matrix-spec'),
  ].filter((dir): dir is string => !!dir);
  const found = candidates.find((dir) => existsSync(join(dir, 'openapi', 'client-server.json')));
  if (!found) throw new Error(`Matrix spec data not found in any of: ${candidates.join(', ')}`);
  return found;
}

export const SPEC_DIR: string = resolveSpecDir();

/** A path inside the spec data, e.g. specPath('state-res', 'ruma-fixtures'). */
export function specPath(...parts: string[]): string {
  return join(SPEC_DIR, ...parts);
}
