/**
 * Push rule evaluation (spec v1.16 "Push Rules", appendices "Dot-separated property paths" and
 * "Glob-style matching"): which rule of a user's ruleset an event matches first, and what its
 * actions mean (notify, highlight). Pure: the room facts a condition needs come in a context.
 */
import { PUSH_RULE_KINDS, type PushRule, type PushRuleset } from './rules.js';

/** What the conditions need to know about the room and the user whose rules are evaluated. */
export interface PushContext {
  /** The owner of the ruleset. */
  userId: string;
  /** Their display name in the room (contains_display_name); absent or empty never matches. */
  displayName?: string;
  /** The room's joined members now (room_member_count). */
  memberCount: number;
  /** Whether the sender's power level reaches `notifications[key]` of the power levels (sender_notification_permission). */
  senderMayNotify(key: string): boolean;
}

export interface PushEvaluation {
  /** The rule that matched, as kind/rule_id; undefined when none did. */
  ruleId?: string;
  /** Its actions without the historical dont_notify and coalesce. */
  actions: unknown[];
  notify: boolean;
  highlight: boolean;
}

type Json = Record<string, unknown>;

/** Rules that only apply to events without m.mentions (spec v1.7: deprecated legacy mention rules). */
const LEGACY_MENTION_RULES = new Set(['.m.rule.contains_display_name', '.m.rule.contains_user_name', '.m.rule.roomnotif']);

const NO_MATCH: PushEvaluation = { actions: [], notify: false, highlight: false };

/**
 * The first enabled rule of the ruleset (override, content, room, sender, underride, each in
 * its order) that matches the event decides. The user's own events never notify.
 */
export function evaluatePushRules(ruleset: PushRuleset, event: Json, ctx: PushContext): PushEvaluation {
  if (event.sender === ctx.userId) return NO_MATCH;
  const content = isObject(event.content) ? event.content : {};
  const hasMentions = Object.prototype.hasOwnProperty.call(content, 'm.mentions');
  for (const kind of PUSH_RULE_KINDS) {
    for (const rule of ruleset[kind] ?? []) {
      if (!rule.enabled) continue;
      if (hasMentions && rule.default && LEGACY_MENTION_RULES.has(rule.rule_id)) continue;
      if (!ruleMatches(kind, rule, event, ctx)) continue;
      const actions = (rule.actions ?? []).filter((a) => a !== 'dont_notify' && a !== 'coalesce');
      return { ruleId: `${kind}/${rule.rule_id}`, actions, notify: actions.includes('notify'), highlight: actions.some(isHighlight) };
    }
  }
  return NO_MATCH;
}

function ruleMatches(kind: string, rule: PushRule, event: Json, ctx: PushContext): boolean {
  switch (kind) {
    case 'override':
    case 'underride':
      return (rule.conditions ?? []).every((c) => conditionMatches(c, event, ctx));
    case 'content': {
      const body = isObject(event.content) ? event.content.body : undefined;
      return typeof rule.pattern === 'string' && typeof body === 'string' && globRegex(rule.pattern, true).test(body);
    }
    case 'room':
      return event.room_id === rule.rule_id;
    case 'sender':
      return event.sender === rule.rule_id;
    default:
      return false;
  }
}

/** One condition; unknown kinds and malformed parameters never match (spec: "Unrecognised conditions MUST NOT match"). */
export function conditionMatches(condition: Json, event: Json, ctx: PushContext): boolean {
  switch (condition.kind) {
    case 'event_match': {
      if (typeof condition.key !== 'string' || typeof condition.pattern !== 'string') return false;
      const path = cachedPath(condition.key);
      const value = lookup(event, path);
      if (typeof value !== 'string') return false;
      const isBody = path.length === 2 && path[0] === 'content' && path[1] === 'body';
      return globRegex(condition.pattern, isBody).test(value);
    }
    case 'event_property_is': {
      if (typeof condition.key !== 'string' || !isScalar(condition.value)) return false;
      const value = lookup(event, cachedPath(condition.key));
      return isScalar(value) && value === condition.value;
    }
    case 'event_property_contains': {
      if (typeof condition.key !== 'string' || !isScalar(condition.value)) return false;
      const value = lookup(event, cachedPath(condition.key));
      return Array.isArray(value) && value.some((v) => isScalar(v) && v === condition.value);
    }
    case 'contains_display_name': {
      const body = isObject(event.content) ? event.content.body : undefined;
      if (!ctx.displayName || typeof body !== 'string') return false;
      return cached(displayNameRegexes, ctx.displayName, () => wordRegex(escapeRegex(ctx.displayName!))).test(body);
    }
    case 'room_member_count':
      return typeof condition.is === 'string' && memberCountMatches(condition.is, ctx.memberCount);
    case 'sender_notification_permission':
      return typeof condition.key === 'string' && ctx.senderMayNotify(condition.key);
    default:
      return false;
  }
}

/*
 * Rules are evaluated for every event and every user who may be notified (a /sync of each
 * member of a busy room), always with the same few keys, patterns and display names: what is
 * derived from them is kept, bounded, instead of rebuilt per evaluation.
 */
const CACHE_LIMIT = 10_000;
const paths = new Map<string, string[]>();
const displayNameRegexes = new Map<string, RegExp>();

function cached<T>(cache: Map<string, T>, key: string, make: () => T): T {
  let value = cache.get(key);
  if (value === undefined) {
    value = make();
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(key, value);
  }
  return value;
}

/** splitPropertyPath, kept per key (callers never modify the segments). */
function cachedPath(key: string): string[] {
  return cached(paths, key, () => splitPropertyPath(key));
}

/**
 * A dot-separated property path as segments: `.` separates, `\.` is a literal dot and `\\` a
 * literal backslash; any other backslash is itself (spec appendix "Dot-separated property paths").
 */
export function splitPropertyPath(key: string): string[] {
  const segments: string[] = [];
  let current = '';
  for (let i = 0; i < key.length; i++) {
    const c = key[i]!;
    if (c === '\\' && (key[i + 1] === '.' || key[i + 1] === '\\')) {
      current += key[i + 1];
      i++;
    } else if (c === '.') {
      segments.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  segments.push(current);
  return segments;
}

/** The value at a path through nested objects (never into arrays); undefined when absent. */
function lookup(event: Json, path: string[]): unknown {
  let value: unknown = event;
  for (const segment of path) {
    if (!isObject(value) || !Object.prototype.hasOwnProperty.call(value, segment)) return undefined;
    value = value[segment];
  }
  return value;
}

/** Non-compound canonical JSON values: strings, integers in the canonical range, booleans, null. */
function isScalar(value: unknown): value is string | number | boolean | null {
  return value === null || typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isSafeInteger(value));
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isHighlight(action: unknown): boolean {
  // "If a highlight tweak is given with no value, its value is defined to be true."
  return isObject(action) && action.set_tweak === 'highlight' && (action.value === undefined || action.value === true);
}

function memberCountMatches(is: string, count: number): boolean {
  const m = /^(==|<=|>=|<|>)?([0-9]+)$/.exec(is);
  if (!m) return false;
  const n = Number(m[2]);
  switch (m[1] ?? '==') {
    case '==':
      return count === n;
    case '<':
      return count < n;
    case '>':
      return count > n;
    case '<=':
      return count <= n;
    default:
      return count >= n;
  }
}

const wordGlobs = new Map<string, RegExp>();
const wholeGlobs = new Map<string, RegExp>();

/**
 * A glob (`*` any run of characters, `?` exactly one) as a case-insensitive regex over the
 * whole value, or for content.body over any substring between word boundaries.
 */
export function globRegex(pattern: string, wordBoundaries: boolean): RegExp {
  return cached(wordBoundaries ? wordGlobs : wholeGlobs, pattern, () => {
    const body = [...pattern].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : escapeRegex(c))).join('');
    return wordBoundaries ? wordRegex(body) : new RegExp(`^${body}$`, 'isu');
  });
}

/** A word boundary is the start or end of the value or any character outside [A-Za-z0-9_]. */
function wordRegex(body: string): RegExp {
  return new RegExp(`(?:^|[^A-Za-z0-9_])${body}(?:[^A-Za-z0-9_]|$)`, 'isu');
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
