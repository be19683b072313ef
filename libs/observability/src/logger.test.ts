import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createServiceLogger } from './logger.js';
import { runWithRequestId } from './request-context.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line));
      cb();
    },
  });
  return { lines, stream };
}

describe('createServiceLogger', () => {
  it('writes JSON lines with the service, and the request id inside a request', async () => {
    const { lines, stream } = capture();
    const logger = createServiceLogger({ service: 'room-server', level: 'info', destination: stream });
    logger.info('outside');
    await runWithRequestId('req-1', async () => {
      await new Promise((r) => setTimeout(r, 1));
      logger.info({ room: '!a:b' }, 'inside');
    });
    logger.debug('below the level');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ service: 'room-server', msg: 'outside', level: 30 });
    expect(lines[0]).not.toHaveProperty('request_id');
    expect(lines[1]).toMatchObject({ service: 'room-server', msg: 'inside', room: '!a:b', request_id: 'req-1' });
    expect(typeof lines[1]!.time).toBe('string');
  });

  it('tags lines of child loggers too', async () => {
    const { lines, stream } = capture();
    const logger = createServiceLogger({ service: 'client-api', level: 'debug', destination: stream }).child({ module: 'sync' });
    runWithRequestId('abc', () => logger.debug('woken'));
    expect(lines[0]).toMatchObject({ service: 'client-api', module: 'sync', request_id: 'abc', msg: 'woken' });
  });
});
