/**
 * A configuration problem that must stop startup. The message names the file (or the
 * environment variable) and the field, so an operator knows what to fix without a stack trace.
 */
export class ConfigError extends Error {
  constructor(
    /** The config file, key file or environment variable the bad value came from. */
    readonly source: string,
    /** The field, dotted for nested ones (`listeners.client.port`). */
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${source}: ${field}: ${problem}`);
    this.name = 'ConfigError';
  }
}
