/**
 * The refusal of an event by a rule: `rule` names the rule (for logs and tests), the message
 * says what was wrong, e.g. "m.room.member join: sender is banned".
 */
export class AuthError extends Error {
  constructor(
    readonly rule: string,
    detail: string,
  ) {
    super(`${rule}: ${detail}`);
    this.name = 'AuthError';
  }
}

/** Throws an AuthError naming `rule` unless `condition` holds. */
export function check(condition: unknown, rule: string, detail: string): asserts condition {
  if (!condition) throw new AuthError(rule, detail);
}
