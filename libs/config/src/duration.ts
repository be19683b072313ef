/** Parses Synapse-style durations: a number of milliseconds, or "500ms", "30s", "5m", "12h", "7d", "1w", "1y". */
const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
  y: 365 * 86_400_000,
};

export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value > 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = /^(\d+)(ms|s|m|h|d|w|y)?$/.exec(value.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * UNITS[m[2] ?? 'ms'];
  return ms > 0 && Number.isSafeInteger(ms) ? ms : undefined;
}
