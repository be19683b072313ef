/**
 * Which replica serves which destination: a destination belongs to shard hash(name) mod N; a
 * shard belongs to the live replica with the highest rendezvous score for it. When a replica
 * joins or leaves, only the shards whose top scorer changed move, and no replica restarts.
 * Ownership itself is a lease (libs/storage/src/fanout/shard-leases.ts): the score says who
 * should take a shard, the lease says who holds it.
 */
import { createHash } from 'node:crypto';

function hash32(text: string): number {
  return createHash('sha256').update(text).digest().readUInt32BE(0);
}

export function shardOf(serverName: string, shardCount: number): number {
  return hash32(serverName) % shardCount;
}

export function rendezvousOwner(shard: number, replicas: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const r of replicas) {
    const score = hash32(`${shard}\u0000${r}`);
    if (score > bestScore || (score === bestScore && best !== undefined && r < best)) {
      best = r;
      bestScore = score;
    }
  }
  return best;
}

export function shardsFor(replica: string, replicas: readonly string[], shardCount: number): number[] {
  const out: number[] = [];
  for (let s = 0; s < shardCount; s++) if (rendezvousOwner(s, replicas) === replica) out.push(s);
  return out;
}
