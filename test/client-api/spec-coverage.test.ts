import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

describe('npm run spec-coverage', () => {
  it('lists every spec operation and ends with the count, from the running app’s routes', async () => {
    const { stdout } = await run('npx', ['tsx', 'tools/spec-coverage.ts'], { cwd: new URL('../../', import.meta.url).pathname, maxBuffer: 10 * 1024 * 1024 });
    const lines = stdout.trim().split('\n');
    const last = lines.at(-1)!;
    const match = /^covered (\d+) of (\d+) client-server operations$/.exec(last);
    expect(match, last).not.toBeNull();
    const [covered, total] = [Number(match![1]), Number(match![2])];
    const operations = lines.slice(0, -1);
    expect(operations).toHaveLength(total);
    expect(operations.filter((l) => l.startsWith('implemented'))).toHaveLength(covered);
    // Operations this module serves, including the spec's trailing-slash path served by a wildcard.
    for (const op of ['POST   /_matrix/client/v3/register', 'GET    /_matrix/client/v3/pushrules/global/', 'PUT    /_matrix/client/v3/sendToDevice/{eventType}/{txnId}']) {
      expect(operations).toContain(`implemented  ${op}`);
    }
    // And one nobody serves yet is reported missing, so the check is not vacuous.
    expect(operations.some((l) => l.startsWith('missing'))).toBe(true);
  });
});
