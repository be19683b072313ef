import { defineConfig } from 'vitest/config';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// Resolve the workspace's @tessera/* aliases from tsconfig.base.json, the one source of truth.
const base = JSON.parse(readFileSync(new URL('./tsconfig.base.json', import.meta.url), 'utf8'));
const alias = Object.entries(base.compilerOptions.paths as Record<string, string[]>).map(([find, [target]]) => ({
  find,
  replacement: fileURLToPath(new URL(`./${target}`, import.meta.url)),
}));

export default defineConfig({
  resolve: { alias },
  test: {
    include: [
      'apps/**/*.test.ts', 'libs/**/*.test.ts', 'test/**/*.test.ts', 'tools/**/*.test.ts', 'deploy/**/*.test.ts',
      // Measurements written as tests (bench/sliding-sync-wake.measure.test.ts): run on request only.
      ...(process.env.SLIDING_WAKE_MEASURE === '1' ? ['bench/**/*.measure.test.ts'] : []),
    ],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two test files at a time: most wait on PostgreSQL, NATS, Redis, HTTP or child processes,
    // and vitest's default on a 2-core machine (cores - 1) ran the suite one file at a time.
    maxWorkers: 2,
  },
});
