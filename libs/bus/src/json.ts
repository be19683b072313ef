import { BUS_BAD_PAYLOAD, BUS_BAD_SUBJECT, BusError } from './errors.js';

/**
 * Payloads are JSON on every transport. The in-process transport round-trips them through JSON
 * too, so that a payload that would break over NATS (a Map, a BigInt, a Date that comes back
 * as a string) breaks in the embedded mode as well, not only in production.
 */
export function encodeJson(value: unknown, subject: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new BusError(BUS_BAD_PAYLOAD, `payload for ${subject} is not JSON-serializable: ${(error as Error).message}`);
  }
  // JSON.stringify(undefined) is undefined: send null so that the other side gets a value.
  return text ?? 'null';
}

export function decodeJson(text: string, subject: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new BusError(BUS_BAD_PAYLOAD, `message on ${subject} is not valid JSON: ${(error as Error).message}`);
  }
}

export function jsonCopy<T>(value: T, subject: string): T {
  return decodeJson(encodeJson(value, subject), subject) as T;
}

const SUBJECT = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

/** Subjects and prefixes are dot-separated tokens; no wildcards, no spaces. */
export function assertSubject(subject: string, what = 'subject'): void {
  if (typeof subject !== 'string' || !SUBJECT.test(subject)) {
    throw new BusError(BUS_BAD_SUBJECT, `invalid bus ${what} ${JSON.stringify(subject)}: use dot-separated tokens of letters, digits, _ and -`);
  }
}
