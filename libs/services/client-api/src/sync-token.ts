/**
 * The /sync `since`/`next_batch` token: one position per stream, so each store can answer
 * "what changed since X". keys/changes takes these tokens too (its `from` and `to`).
 *
 * Form: `s` followed by the positions joined with `_`, in SYNC_STREAMS order, e.g.
 * `s42_7_3_9_0_12_5`. Missing trailing positions read as 0, so a stream added at the end keeps
 * old tokens valid. The rooms/sync work owns `events`; client-api owns the others.
 *
 * A /sync answer may name itself with a tag after `~` (lower-case letters and digits, e.g.
 * `s42_7_3_9_0_12_5~k2x9q1`): two answers at the same positions then still have different
 * tokens (see LazyMembersCache). Decoding ignores the tag.
 */
export const SYNC_STREAMS = ['events', 'account_data', 'to_device', 'device_lists', 'receipts', 'typing', 'presence'] as const;
export type SyncStream = (typeof SYNC_STREAMS)[number];
export type SyncPositions = Record<SyncStream, number>;

export function encodeSyncToken(positions: SyncPositions): string {
  return `s${SYNC_STREAMS.map((stream) => positions[stream]).join('_')}`;
}

/** The token with a tag naming the answer that gives it (letters a-z and digits). */
export function tagSyncToken(token: string, tag: string): string {
  return `${token}~${tag}`;
}

/** The token without its tag, if it has one. */
export function untagSyncToken(token: string): string {
  const tag = token.indexOf('~');
  return tag < 0 ? token : token.slice(0, tag);
}

/** The positions of a token (tagged or not); undefined when it is not one of ours. */
export function decodeSyncToken(token: string): SyncPositions | undefined {
  if (!/^s\d+(_\d+)*(~[0-9a-z]{1,32})?$/.test(token)) return undefined;
  const parts = untagSyncToken(token).slice(1).split('_').map(Number);
  if (parts.length > SYNC_STREAMS.length || !parts.every(Number.isSafeInteger)) return undefined;
  return Object.fromEntries(SYNC_STREAMS.map((stream, i) => [stream, parts[i] ?? 0])) as SyncPositions;
}
