import { badJson } from '../errors.js';
import { isPlainObject } from '../validation.js';

/** One (type, state_key) pattern; an absent field matches anything. `$ME` as state key is the requesting user. */
export interface StateSelector {
  type?: string;
  stateKey?: string;
}

/**
 * What state a room config asks for (MSC4186 "RequiredStateRequest"). Members of the
 * timeline's senders are added by `lazyMembers` (`$LAZY`), and are not subject to `exclude`.
 */
export interface RequiredState {
  include: StateSelector[];
  exclude: StateSelector[];
  lazyMembers: boolean;
}

export const MEMBER = 'm.room.member';
const WILDCARD = '*';
const LAZY = '$LAZY';
const ME = '$ME';

export const NO_STATE: RequiredState = { include: [], exclude: [], lazyMembers: false };

/**
 * The request's `required_state`, in either form clients send: the list of [type, state_key]
 * pairs of the Synapse implementation Element X speaks (`*` wildcards, `$LAZY`, `$ME`), or the
 * MSC's current object form {include, exclude, lazy_members}.
 */
export function parseRequiredState(value: unknown, where: string): RequiredState {
  if (value === undefined || value === null) return NO_STATE;
  if (Array.isArray(value)) {
    const out: RequiredState = { include: [], exclude: [], lazyMembers: false };
    for (const pair of value) {
      if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
        throw badJson(`${where}: each required_state entry must be a [type, state_key] pair of strings`);
      }
      const [type, stateKey] = pair as [string, string];
      if (stateKey === LAZY) {
        // $LAZY only means something for members; elsewhere it is a literal state key, as Synapse reads it.
        if (type === MEMBER) {
          out.lazyMembers = true;
          continue;
        }
      }
      out.include.push(selector(type === WILDCARD ? undefined : type, stateKey === WILDCARD ? undefined : stateKey));
    }
    return out;
  }
  if (!isPlainObject(value)) throw badJson(`${where}: required_state must be a list of [type, state_key] pairs or an object`);
  const lazy = value.lazy_members;
  if (lazy !== undefined && typeof lazy !== 'boolean') throw badJson(`${where}: required_state.lazy_members must be true or false`);
  return { include: selectors(value.include, `${where}: required_state.include`), exclude: selectors(value.exclude, `${where}: required_state.exclude`), lazyMembers: lazy === true };
}

function selectors(value: unknown, where: string): StateSelector[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw badJson(`${where} must be a list`);
  return value.map((element) => {
    if (!isPlainObject(element)) throw badJson(`${where}: each element must be an object with optional "type" and "state_key"`);
    const { type, state_key: stateKey } = element;
    if ((type !== undefined && typeof type !== 'string') || (stateKey !== undefined && typeof stateKey !== 'string')) {
      throw badJson(`${where}: "type" and "state_key" must be strings`);
    }
    return selector(type, stateKey);
  });
}

function selector(type: string | undefined, stateKey: string | undefined): StateSelector {
  const out: StateSelector = {};
  if (type !== undefined) out.type = type;
  if (stateKey !== undefined) out.stateKey = stateKey;
  return out;
}

function selects(s: StateSelector, type: string, stateKey: string, me: string): boolean {
  if (s.type !== undefined && s.type !== type) return false;
  if (s.stateKey === undefined) return true;
  return (s.stateKey === ME ? me : s.stateKey) === stateKey;
}

/**
 * Whether one of the combined configs asks for this piece of state (the union, MSC4186
 * "Combining room configs"). `lazyUsers`: the users whose membership $LAZY brings in.
 */
export function wantsState(configs: readonly RequiredState[], type: string, stateKey: string, me: string, lazyUsers: ReadonlySet<string>): boolean {
  return configs.some((c) => {
    if (c.lazyMembers && type === MEMBER && lazyUsers.has(stateKey)) return true;
    return c.include.some((s) => selects(s, type, stateKey, me)) && !c.exclude.some((s) => selects(s, type, stateKey, me));
  });
}

/** Whether any of the configs asks for lazily loaded members. */
export function wantsLazyMembers(configs: readonly RequiredState[]): boolean {
  return configs.some((c) => c.lazyMembers);
}

/** The configs as comparable keys: what each includes, excludes, and whether it loads members lazily. */
function shapeOf(configs: readonly RequiredState[]): { include: Set<string>; exclude: Set<string>; lazy: boolean } {
  const key = (s: StateSelector) => `${s.type ?? '\u0000*'}\u0001${s.stateKey ?? '\u0000*'}`;
  return {
    include: new Set(configs.flatMap((c) => c.include.map(key))),
    exclude: new Set(configs.flatMap((c) => c.exclude.map(key))),
    lazy: wantsLazyMembers(configs),
  };
}

/**
 * Whether `next` may ask for state that `previous` did not (MSC4186 "Changes to
 * required_state"): a new include pattern, a dropped exclude, or lazy members turned on. A
 * narrower or equal config is no expansion.
 */
export function requiredStateExpanded(previous: readonly RequiredState[], next: readonly RequiredState[]): boolean {
  const before = shapeOf(previous);
  const after = shapeOf(next);
  if (after.lazy && !before.lazy) return true;
  for (const k of after.include) if (!before.include.has(k)) return true;
  for (const k of before.exclude) if (!after.exclude.has(k)) return true;
  return false;
}

/** A piece of state the client holds that the room no longer has (MSC4186 `StateStub`: no content). */
export interface StateStub {
  type: string;
  state_key: string;
}

/**
 * The required_state to send of a room: the wanted (type, state_key, event id) entries whose
 * event differs from the one sent before (`previous`: `type \0 state_key` -> event id; empty
 * when sent in full), and a StateStub for each piece sent before that is gone from the room's
 * state (MSC4186: "to handle state being deleted"). A piece still in the room but no longer
 * asked for is neither sent nor stubbed: the client keeps what it has. An event with empty
 * content (the usual way of "removing" state, e.g. an m.room.name of {}) is still state: sent as
 * an event. Returns the new record too.
 */
export function requiredStateDelta(
  previous: ReadonlyMap<string, string> | undefined,
  current: ReadonlyArray<readonly [type: string, stateKey: string, eventId: string]>,
  wants: (type: string, stateKey: string) => boolean,
): { state: Map<string, string>; send: string[]; removed: StateStub[] } {
  const key = (type: string, stateKey: string) => `${type}\u0000${stateKey}`;
  const state = new Map(previous ?? []);
  const send: string[] = [];
  const present = new Set<string>();
  for (const [type, stateKey, eventId] of current) {
    const k = key(type, stateKey);
    present.add(k);
    if (!wants(type, stateKey) || state.get(k) === eventId) continue;
    state.set(k, eventId);
    send.push(eventId);
  }
  const removed: StateStub[] = [];
  for (const k of [...state.keys()]) {
    if (present.has(k)) continue;
    const cut = k.indexOf('\u0000');
    removed.push({ type: k.slice(0, cut), state_key: k.slice(cut + 1) });
    state.delete(k);
  }
  return { state, send, removed };
}
