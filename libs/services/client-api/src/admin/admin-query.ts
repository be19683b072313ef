import { invalidParam } from '../errors.js';

/**
 * Query parameters of Synapse's admin API, read as Synapse reads them: a junk value is 400
 * M_INVALID_PARAM naming the parameter, an absent one gives the default.
 */
export function queryOffset(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw invalidParam(`Query parameter "${name}" must be a string representing a positive integer`);
  }
  return Number(value);
}

export function queryBoolean(value: unknown, name: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw invalidParam(`Boolean query parameter "${name}" must be one of ["true", "false"]`);
}

export function queryEnum<T extends string>(value: unknown, name: string, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw invalidParam(`Query parameter "${name}" must be one of [${allowed.map((a) => `"${a}"`).join(', ')}]`);
  }
  return value as T;
}

export function queryString(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw invalidParam(`Query parameter "${name}" must be given once`);
  return value;
}

/** A LIKE pattern matching `text` literally (its % _ and \ escaped). */
export function likeLiteral(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}
