import { MatrixError } from '../errors.js';

/**
 * Localparts a new account may take (spec, "User Identifiers": a-z, 0-9, and - . = _ / +),
 * with Synapse's extra reservations: no leading underscore (application services) and not
 * all digits (generated ids).
 */
const ALLOWED = /^[a-z0-9._=\-/+]+$/;

export function checkNewLocalpart(localpart: string, serverName: string, exclusiveNamespaces: string[]): void {
  if (localpart === '') throw new MatrixError(400, 'M_INVALID_USERNAME', 'The username must not be empty');
  if (!ALLOWED.test(localpart)) {
    throw new MatrixError(400, 'M_INVALID_USERNAME', 'The username may contain only a-z, 0-9, and the characters . _ = - / +');
  }
  if (localpart.startsWith('_')) throw new MatrixError(400, 'M_INVALID_USERNAME', 'The username may not begin with _ (reserved for application services)');
  if (/^\d+$/.test(localpart)) throw new MatrixError(400, 'M_INVALID_USERNAME', 'Numeric usernames are reserved for generated ids');
  const userId = `@${localpart}:${serverName}`;
  if (Buffer.byteLength(userId) > 255) throw new MatrixError(400, 'M_INVALID_USERNAME', 'The user id would be longer than 255 bytes');
  if (exclusiveNamespaces.some((pattern) => new RegExp(pattern).test(userId))) {
    throw new MatrixError(400, 'M_EXCLUSIVE', 'This username is reserved by an application service');
  }
}
