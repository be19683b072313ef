/**
 * Errors that cross the bus. A request handler that throws a BusError makes the caller's
 * request() reject with an equal BusError (same code, message, details), whichever transport
 * carried it: room-server refuses with Matrix error codes, client-api maps them to HTTP.
 */
export class BusError extends Error {
  override name = 'BusError';
  constructor(
    /** A Matrix errcode (M_FORBIDDEN, ...) or one of the BUS_* codes below. */
    readonly code: string,
    message: string,
    /** JSON-serializable extra data for the caller (e.g. { retry_after_ms }). */
    readonly details?: unknown,
  ) {
    super(message);
  }

  toJSON(): WireError {
    return { code: this.code, message: this.message, ...(this.details === undefined ? {} : { details: this.details }) };
  }
}

/** No reply within the request's timeout. The handler may still have acted: retry only idempotent requests. */
export class BusTimeoutError extends BusError {
  override name = 'BusTimeoutError';
  constructor(subject: string, timeoutMs: number) {
    super(BUS_TIMEOUT, `no reply on ${subject} within ${timeoutMs} ms`, { subject, timeoutMs });
  }
}

/** Nobody handles this subject right now (the service is not running or not yet subscribed). */
export class BusNoRespondersError extends BusError {
  override name = 'BusNoRespondersError';
  constructor(subject: string) {
    super(BUS_NO_RESPONDERS, `no handler is listening on ${subject}; is the service that answers it running?`, { subject });
  }
}

export const BUS_TIMEOUT = 'BUS_TIMEOUT';
export const BUS_NO_RESPONDERS = 'BUS_NO_RESPONDERS';
/** The handler failed with something other than a BusError (a bug or an outage on its side). */
export const BUS_HANDLER_FAILED = 'BUS_HANDLER_FAILED';
/** The payload was not valid JSON, or not JSON-serializable. */
export const BUS_BAD_PAYLOAD = 'BUS_BAD_PAYLOAD';
/** A subject or prefix that is not dot-separated tokens. */
export const BUS_BAD_SUBJECT = 'BUS_BAD_SUBJECT';
/** The transport is closed or closing. */
export const BUS_CLOSED = 'BUS_CLOSED';

/** An error as it travels in a reply. */
export interface WireError {
  code: string;
  message: string;
  details?: unknown;
}

/** What a caller receives for whatever a handler threw. */
export function toWireError(error: unknown, subject: string): WireError {
  if (error instanceof BusError) return error.toJSON();
  const reason = error instanceof Error ? error.message : String(error);
  return { code: BUS_HANDLER_FAILED, message: `handler for ${subject} failed: ${reason}` };
}

export function fromWireError(wire: WireError): BusError {
  return new BusError(wire.code, wire.message, wire.details);
}
