/**
 * The request id of the work in progress, carried through async calls with AsyncLocalStorage.
 *
 * It is set at the HTTP edge (taken from X-Request-Id or generated) and by the instrumented bus
 * when a message arrives carrying one, so that every log line and every bus message caused by
 * one client or federation request names the same id, across processes.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';

interface RequestContext {
  requestId: string;
}

const storage = new AsyncLocalStorage<RequestContext>();

/** The header a request id arrives in and is echoed back in. */
export const REQUEST_ID_HEADER = 'x-request-id';

/** Printable, no spaces, bounded: anything else from the outside is replaced by a fresh id. */
const ACCEPTABLE_REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

export function newRequestId(): string {
  return randomUUID();
}

/** A caller-supplied id if it is acceptable, else a new one (a bad header never fails a request). */
export function acceptRequestId(supplied: unknown): string {
  return typeof supplied === 'string' && ACCEPTABLE_REQUEST_ID.test(supplied) ? supplied : newRequestId();
}

export function isAcceptableRequestId(value: unknown): value is string {
  return typeof value === 'string' && ACCEPTABLE_REQUEST_ID.test(value);
}

/** Runs fn with this request id as the current one (for fn and everything it awaits or schedules). */
export function runWithRequestId<T>(requestId: string, fn: () => T): T {
  return storage.run({ requestId }, fn);
}

/** The current request id, or undefined outside any request (startup, timers of background work). */
export function currentRequestId(): string | undefined {
  return storage.getStore()?.requestId;
}
