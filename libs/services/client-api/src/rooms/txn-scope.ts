/**
 * Client transaction ids are scoped to one device and one endpoint (spec "Transaction
 * identifiers"): the same txn id sent to two rooms, or for two event types, or as a send and
 * as a redaction, names two requests (as Synapse, whose cache is keyed by the request path).
 * The event log keys client_txns by (user, device, txn id) only, so the txn id handed to the
 * room-server carries its scope: a marker, then a JSON array of the path's parts and the
 * client's txn id. `clientTxnIdOf` gives the client's own id back (for unsigned.transaction_id);
 * an id stored before scoping (no marker) is returned as it is.
 */
const SCOPED = '\u001f';

export function scopedTxnId(scope: readonly string[], txnId: string): string {
  return SCOPED + JSON.stringify([...scope, txnId]);
}

export function clientTxnIdOf(stored: string): string {
  if (!stored.startsWith(SCOPED)) return stored;
  try {
    const parts: unknown = JSON.parse(stored.slice(SCOPED.length));
    const last = Array.isArray(parts) ? parts[parts.length - 1] : undefined;
    return typeof last === 'string' ? last : stored;
  } catch {
    return stored;
  }
}
