import { randomInt } from 'node:crypto';
import { decodeSyncToken, encodeSyncToken, tagSyncToken, type SyncPositions } from '../sync-token.js';

/**
 * The `pos` of a sliding sync response: a /sync token (so /messages, /relations and
 * /keys/changes take it, as MSC4186 asks) tagged with the connection it belongs to and the
 * generation of that connection's record it was issued with: `s42_7_3_9_0_12_5~k2x9q1ab3`.
 * The tag is the connection's nonce (NONCE_LENGTH characters, fresh for each new connection)
 * followed by the generation in base 36. The nonce makes a pos from another connection, an
 * older one with the same conn_id, or from before a restart unknown (M_UNKNOWN_POS).
 */
export const NONCE_LENGTH = 8;

export interface SlidingPos {
  positions: SyncPositions;
  nonce: string;
  generation: number;
}

export function encodeSlidingPos(pos: SlidingPos): string {
  return tagSyncToken(encodeSyncToken(pos.positions), `${pos.nonce}${pos.generation.toString(36)}`);
}

/** The parts of a pos; undefined when it is not a sliding sync pos of this server. */
export function decodeSlidingPos(token: string): SlidingPos | undefined {
  const tagAt = token.indexOf('~');
  if (tagAt < 0) return undefined;
  const positions = decodeSyncToken(token);
  if (!positions) return undefined;
  const tag = token.slice(tagAt + 1);
  if (tag.length <= NONCE_LENGTH) return undefined;
  const generation = parseInt(tag.slice(NONCE_LENGTH), 36);
  if (!Number.isSafeInteger(generation)) return undefined;
  return { positions, nonce: tag.slice(0, NONCE_LENGTH), generation };
}

/** A fresh connection nonce: lower-case letters and digits, as the sync token's tag allows. */
export function newNonce(): string {
  let out = '';
  while (out.length < NONCE_LENGTH) out += randomInt(36).toString(36);
  return out;
}
