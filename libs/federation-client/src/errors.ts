/**
 * Errors of outbound federation and of inbound request authentication.
 */

/** Why an outbound request failed. */
export type FederationErrorKind =
  | 'discovery' // the server name could not be resolved to somewhere to connect
  | 'blocked' // the address is in a refused IP range (see IpPolicy)
  | 'network' // connection, TLS or socket failure
  | 'timeout' // no complete answer within the deadline
  | 'http' // the remote answered with a non-2xx status
  | 'invalid_response'; // the answer was not what the API promises (bad JSON, too large, ...)

export class FederationError extends Error {
  readonly kind: FederationErrorKind;
  /** The server name we were talking to. */
  readonly destination: string;
  /** HTTP status, for kind 'http'. */
  readonly status?: number;
  /** Matrix errcode from the remote's error body, for kind 'http' when it sent one. */
  readonly errcode?: string;
  /** The remote's parsed JSON error body, when it sent one. */
  readonly body?: unknown;

  constructor(
    kind: FederationErrorKind,
    destination: string,
    message: string,
    extra: { status?: number; errcode?: string; body?: unknown; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'FederationError';
    this.kind = kind;
    this.destination = destination;
    this.status = extra.status;
    this.errcode = extra.errcode;
    this.body = extra.body;
  }
}

/**
 * An inbound request that failed X-Matrix authentication. `status` and `errcode` are what the
 * ingress answers: `{"errcode": errcode, "error": message}` with HTTP `status`.
 */
export class FederationAuthError extends Error {
  readonly errcode: 'M_UNAUTHORIZED' | 'M_FORBIDDEN';
  readonly status: 401 | 403;

  constructor(errcode: 'M_UNAUTHORIZED' | 'M_FORBIDDEN', message: string) {
    super(message);
    this.name = 'FederationAuthError';
    this.errcode = errcode;
    this.status = errcode === 'M_UNAUTHORIZED' ? 401 : 403;
  }

  toJSON(): { errcode: string; error: string } {
    return { errcode: this.errcode, error: this.message };
  }
}
