/**
 * Auth chains and the auth difference (spec: state resolution v2, "Auth chain", "Auth
 * difference"). Walks are breadth-first with one visited set, so a chain costs one visit per
 * distinct event however many events share it.
 */
import type { StateMap } from '../event-types.js';
import type { AuthChainProvider, EventSource } from './event-source.js';

/**
 * The auth chain of the given events: every event reachable through auth_events. The start
 * events themselves are included only if reachable from another start event, unless
 * `includeStart` is set. Events missing from the source end the walk on that branch.
 */
export function authChain(
  eventIds: Iterable<string>,
  events: EventSource,
  options: { includeStart?: boolean; provider?: AuthChainProvider } = {},
): Set<string> {
  const chain = new Set<string>();
  const stack: string[] = [];
  for (const id of eventIds) {
    if (options.includeStart) chain.add(id);
    const provided = options.provider?.(id);
    if (provided) {
      for (const a of provided) chain.add(a);
      continue;
    }
    const event = events.get(id);
    if (event) stack.push(...event.auth_events);
  }
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (chain.has(id)) {
      // A start event reached from another start event still needs its own parents walked.
      continue;
    }
    chain.add(id);
    const provided = options.provider?.(id);
    if (provided) {
      for (const a of provided) chain.add(a);
      continue;
    }
    const event = events.get(id);
    if (event) for (const a of event.auth_events) if (!chain.has(a)) stack.push(a);
  }
  return chain;
}

/**
 * The auth difference of state sets: ∪ C_i − ∩ C_i, where C_i is the full auth chain of the
 * events of S_i (the state events included, as Synapse and ruma do; they are in the
 * conflicted set anyway or in every chain).
 */
export function authChainDifference(stateSets: StateMap[], events: EventSource, provider?: AuthChainProvider): Set<string> {
  if (stateSets.length <= 1) return new Set();
  const counts = new Map<string, number>();
  for (const set of stateSets) {
    for (const id of authChain(new Set(set.values()), events, { includeStart: true, provider })) {
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
  }
  const difference = new Set<string>();
  for (const [id, n] of counts) if (n < stateSets.length) difference.add(id);
  return difference;
}

/**
 * The conflicted state subgraph of v2.1 (MSC4297): every event on an auth_events path from one
 * conflicted event to another (endpoints included).
 */
export function conflictedStateSubgraph(conflicted: Set<string>, events: EventSource): Set<string> {
  // Ancestors of the conflicted events (themselves included), in post-order: an event comes
  // after all its auth events, so one pass decides "reaches a conflicted event".
  const order: string[] = [];
  const state = new Map<string, 1 | 2>(); // 1 = on the stack, 2 = done
  for (const start of conflicted) {
    if (state.has(start)) continue;
    const stack: Array<[string, number]> = [[start, 0]];
    state.set(start, 1);
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const parents = events.get(top[0])?.auth_events ?? [];
      if (top[1] < parents.length) {
        const next = parents[top[1]++];
        if (!state.has(next) && events.get(next)) {
          state.set(next, 1);
          stack.push([next, 0]);
        }
      } else {
        stack.pop();
        state.set(top[0], 2);
        order.push(top[0]);
      }
    }
  }
  const reaches = new Set<string>();
  for (const id of order) {
    if (conflicted.has(id) || (events.get(id)?.auth_events ?? []).some((a) => reaches.has(a))) reaches.add(id);
  }
  return reaches;
}
