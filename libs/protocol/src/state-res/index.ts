export * from './event-source.js';
export { authChain, authChainDifference, conflictedStateSubgraph } from './auth-chain.js';
export { isPowerEvent, separate as separateStateSets } from './conflicts.js';
export { iterativeAuthChecks } from './iterative-auth-checks.js';
export {
  lexicographicalTopologicalSort,
  mainlineSort,
  reverseTopologicalPowerSort,
  senderPowerLevel,
} from './sorting.js';
export { resolveState } from './resolve.js';
export { resolveV1 } from './resolve-v1.js';
export { resolveV2 } from './resolve-v2.js';
export { resolveBatches, resolveAllAtOnce, resolveEventByEvent } from './batches.js';
