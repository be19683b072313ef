import { describe, expect, it } from 'vitest';
import { responseSchema, validateResponse } from './openapi.js';

describe('validateResponse', () => {
  it('accepts a body the spec allows and refuses one it does not', () => {
    validateResponse('client-server', 'GET', '/_matrix/client/versions', 200, { versions: ['v1.16'] });
    expect(() => validateResponse('client-server', 'GET', '/_matrix/client/versions', 200, { versions: 'v1.16' })).toThrow(
      /does not match the spec/,
    );
  });

  it('checks the Matrix string formats', () => {
    const path = '/_matrix/client/v3/account/whoami';
    validateResponse('client-server', 'GET', path, 200, { user_id: '@alice:example.org' });
    expect(() => validateResponse('client-server', 'GET', path, 200, { user_id: 'alice' })).toThrow(/format/);
  });

  it('finds paths whose spec key ends in a space', () => {
    expect(responseSchema('client-server', 'POST', '/_matrix/client/v3/rooms/{roomId}/invite', 200)).toBeTypeOf('object');
    expect(responseSchema('client-server', 'GET', '/_matrix/client/v3/events', 200)).toBeTypeOf('object');
  });

  it('refuses operations and statuses the spec does not document', () => {
    expect(() => validateResponse('server-server', 'GET', '/_matrix/federation/v1/nope', 200, {})).toThrow(/no operation/);
    expect(() => validateResponse('server-server', 'GET', '/_matrix/federation/v1/version', 418, {})).toThrow(/documents no 418/);
  });
});
