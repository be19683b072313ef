import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const CHILD = fileURLToPath(new URL('./fixtures/idle-memory-trim.child.ts', import.meta.url));

async function runChild(mode: 'idle' | 'busy'): Promise<{ grown: number; after: number; collections: number; collectionsAtShrink?: number; shrunkAt?: number }> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', '--max-semi-space-size=16', '--import', 'tsx', CHILD, mode], { timeout: 30_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!);
}

describe('idle memory trim', () => {
  it('shrinks a young generation grown by a burst once the process is idle, then stops collecting', async () => {
    const r = await runChild('idle');
    expect(r.grown).toBeGreaterThanOrEqual(8 * 1024 * 1024);
    expect(r.after).toBeLessThan(r.grown / 4);
    expect(r.shrunkAt).toBeDefined();
    // Once shrunk it stops collecting: the run stays idle for seconds after the shrink (a dozen
    // or more intervals, each a collection if it did not stop). A loaded machine may let the
    // young generation grow a little again, and the shrink is seen up to 100 ms late: a few more.
    expect(r.shrunkAt!).toBeLessThan(8_000);
    expect(r.collections - r.collectionsAtShrink!).toBeLessThanOrEqual(3);
  });

  it('runs no collection while the event loop is busy', async () => {
    const r = await runChild('busy');
    expect(r.collections).toBe(0);
    expect(r.after).toBeGreaterThanOrEqual(r.grown / 2);
  });
});
