type Json = Record<string, unknown>;

/**
 * A user's cross-signing key as shown to `viewer` (a user id; undefined for another server).
 * Signatures that other users made of someone's master key with their user-signing keys are
 * visible only to the users who made them (spec "Cross-signing": a user sees the signatures of
 * their own user-signing key, no one else's; as Synapse): the owner's own signatures are kept,
 * and the viewer's.
 */
export function crossSigningKeyAsSeenBy<T extends Json>(key: T, owner: string, viewer?: string): T {
  const signatures = key.signatures;
  if (!signatures || typeof signatures !== 'object' || Array.isArray(signatures)) return key;
  const signers = Object.keys(signatures);
  if (signers.every((signer) => signer === owner || signer === viewer)) return key;
  const kept = Object.fromEntries(Object.entries(signatures).filter(([signer]) => signer === owner || signer === viewer));
  return { ...key, signatures: kept };
}
