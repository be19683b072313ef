/** Small shapes shared by several contracts. */

/**
 * A change of one (type, state_key) entry of a room's state. event_id null means the entry
 * was removed (possible when state resolution merges forks); previous_event_id null means it
 * is new.
 */
export interface StateChange {
  type: string;
  state_key: string;
  /** The state event now in force for this key, or null when the key left the state. */
  event_id: string | null;
  /** The state event it replaced, or null when the key was not in the state before. */
  previous_event_id: string | null;
  /**
   * For m.room.member only: the membership now and before ('join', 'invite', 'leave', 'ban',
   * 'knock'; null when absent). Saves sync (whose room list changes) and fanout-sender (whose
   * set of joined servers changes) from loading both events to find out.
   */
  membership?: string | null;
  previous_membership?: string | null;
}

/** A client's transaction id (PUT .../send/{type}/{txnId}): scoped to the device that sent it. */
export interface ClientTransaction {
  device_id: string;
  txn_id: string;
}
