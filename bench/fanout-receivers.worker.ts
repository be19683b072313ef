/**
 * The remote servers of bench/fanout.bench.ts in a worker thread, so that their TLS and
 * signature checks do not share the sender's event loop (on a real network they run
 * elsewhere). Messages: { op: 'has', eventId, names? } -> number of servers holding the event;
 * { op: 'down', names, down } -> ok; { op: 'distinct', name } -> distinct event ids received.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { pduId, startRemoteCrowd } from '../test/fanout/support.js';

interface Setup {
  count: number;
  origin: string;
  keyId: string;
  publicKeyBase64: string;
}

const setup = workerData as Setup;
const publicKey = new Uint8Array(Buffer.from(setup.publicKeyBase64, 'base64'));
const crowd = await startRemoteCrowd(setup.count, (o, k) => (o === setup.origin && k === setup.keyId ? publicKey : undefined));
const seen = new Map<string, Set<string>>();
const collect = () => {
  for (const s of crowd.servers.values()) {
    let set = seen.get(s.name);
    if (!set) seen.set(s.name, (set = new Set()));
    for (const t of s.txns.splice(0)) for (const p of t.pdus) set.add(pduId(p));
  }
};

parentPort!.on('message', async (m: { op: string; id: number; eventId?: string; names?: string[]; down?: boolean; name?: string }) => {
  collect();
  if (m.op === 'has') {
    let n = 0;
    for (const [name, set] of seen) if ((!m.names || m.names.includes(name)) && set.has(m.eventId!)) n++;
    parentPort!.postMessage({ id: m.id, result: n });
  } else if (m.op === 'down') {
    for (const name of m.names ?? []) crowd.servers.get(name)!.down = m.down ?? false;
    parentPort!.postMessage({ id: m.id, result: true });
  } else if (m.op === 'distinct') {
    parentPort!.postMessage({ id: m.id, result: seen.get(m.name!)?.size ?? 0 });
  } else if (m.op === 'reset') {
    seen.clear();
    parentPort!.postMessage({ id: m.id, result: true });
  } else if (m.op === 'close') {
    await crowd.close();
    parentPort!.postMessage({ id: m.id, result: true });
  }
});
parentPort!.postMessage({ ready: true, names: [...crowd.servers.keys()], caPem: crowd.ca.certPem });
