/**
 * The behaviour every BusTransport must have, as one vitest suite that each transport's test
 * file runs with its own factory. Imported only by tests (it imports vitest), never by index.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { BUS_BAD_PAYLOAD, BUS_CLOSED, BUS_HANDLER_FAILED, BUS_NO_RESPONDERS, BUS_TIMEOUT, BusError, BusTimeoutError } from './errors.js';
import type { BusTransport } from './transport.js';

/** A bus "world": what one deployment (or test run) shares. */
export interface BusWorld {
  /** A transport onto this world, as one more process would have (for in-process: the same bus). */
  connect(): Promise<BusTransport>;
  /** Closes every transport connected; called after each test. */
  closeAll(): Promise<void>;
}

export interface TransportFactory {
  name: string;
  skip: boolean;
  /** A fresh world no other test sees (NATS: a new subject prefix). */
  newWorld(): Promise<BusWorld>;
  /** Whether each connect() is a separate connection (close of one leaves the others working). */
  separateConnections: boolean;
}

/** Polls until check() holds; the test's own timeout bounds the wait. */
export async function waitFor(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 10));
}

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

export function busContractSuite(factory: TransportFactory): void {
  describe.skipIf(factory.skip)(`BusTransport contract: ${factory.name}`, () => {
    const worlds: BusWorld[] = [];
    async function world(): Promise<BusWorld> {
      const w = await factory.newWorld();
      worlds.push(w);
      return w;
    }
    afterEach(async () => {
      await Promise.all(worlds.splice(0).map((w) => w.closeAll()));
    });

    it('answers a request with the handler result, as JSON', async () => {
      const w = await world();
      const server = await w.connect();
      const client = await w.connect();
      await server.handle<{ a: number; b: number }, { sum: number; at: string }>('math.add', async ({ a, b }) => ({ sum: a + b, at: 'x' }));
      expect(await client.request('math.add', { a: 2, b: 40 })).toEqual({ sum: 42, at: 'x' });
      // JSON semantics on every transport: a Date arrives as its ISO string, undefined fields vanish.
      await server.handle<unknown, unknown>('echo', async (p) => p);
      const when = new Date('2024-05-06T07:08:09.000Z');
      expect(await client.request('echo', { when, gone: undefined, list: [1, null] })).toEqual({ when: when.toISOString(), list: [1, null] });
      expect(await client.request('echo', 'plain string')).toBe('plain string');
    });

    it('gives each request to exactly one handler of a queue group', async () => {
      const w = await world();
      const seen: { handler: number; id: number }[] = [];
      for (let h = 0; h < 3; h++) {
        const bus = await w.connect();
        await bus.handle<{ id: number }, number>('work', async ({ id }) => {
          seen.push({ handler: h, id });
          return id * 2;
        }, { queue: 'workers' });
      }
      const client = await w.connect();
      const ids = Array.from({ length: 30 }, (_, i) => i);
      const replies = await Promise.all(ids.map((id) => client.request<{ id: number }, number>('work', { id })));
      expect(replies).toEqual(ids.map((id) => id * 2));
      expect(seen.map((s) => s.id).sort((a, b) => a - b)).toEqual(ids);
    });

    it('carries a BusError back to the caller with code, message and details', async () => {
      const w = await world();
      const server = await w.connect();
      const client = await w.connect();
      await server.handle('guarded', async () => {
        throw new BusError('M_FORBIDDEN', 'you are not in this room', { room_id: '!r:x', reason: 'not_joined' });
      });
      const error = await client.request('guarded', {}).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BusError);
      expect(error).toMatchObject({ code: 'M_FORBIDDEN', message: 'you are not in this room', details: { room_id: '!r:x', reason: 'not_joined' } });
    });

    it('turns any other handler failure into BUS_HANDLER_FAILED', async () => {
      const w = await world();
      const server = await w.connect();
      const client = await w.connect();
      await server.handle('buggy', async () => {
        throw new TypeError('cannot read x of undefined');
      });
      await expect(client.request('buggy', {})).rejects.toMatchObject({ code: BUS_HANDLER_FAILED, message: expect.stringContaining('cannot read x of undefined') });
    });

    it('refuses a payload that is not JSON before sending it', async () => {
      const w = await world();
      const bus = await w.connect();
      let called = false;
      await bus.handle('echo', async (p) => {
        called = true;
        return p;
      });
      await expect(bus.request('echo', { n: 10n })).rejects.toMatchObject({ code: BUS_BAD_PAYLOAD });
      await expect(bus.publish('echo', { n: 10n })).rejects.toMatchObject({ code: BUS_BAD_PAYLOAD });
      expect(called).toBe(false);
    });

    it('refuses malformed subjects', async () => {
      const w = await world();
      const bus = await w.connect();
      await expect(bus.request('bad subject', {})).rejects.toMatchObject({ code: 'BUS_BAD_SUBJECT' });
      await expect(bus.subscribe('events.>', () => undefined)).rejects.toMatchObject({ code: 'BUS_BAD_SUBJECT' });
    });

    it('fails with BusTimeoutError when no reply comes in time', async () => {
      const w = await world();
      const server = await w.connect();
      const client = await w.connect();
      const release = deferred();
      await server.handle('slow', async () => {
        await release.promise;
        return 'late';
      });
      const error = await client.request('slow', {}, { timeoutMs: 100 }).catch((e: unknown) => e);
      release.resolve();
      expect(error).toBeInstanceOf(BusTimeoutError);
      expect(error).toMatchObject({ code: BUS_TIMEOUT });
    });

    it('fails with BUS_NO_RESPONDERS when nobody handles the subject, and after unsubscribe', async () => {
      const w = await world();
      const server = await w.connect();
      const client = await w.connect();
      await expect(client.request('nobody.home', {})).rejects.toMatchObject({ code: BUS_NO_RESPONDERS });
      const sub = await server.handle('briefly', async () => 'here');
      expect(await client.request('briefly', {})).toBe('here');
      await sub.unsubscribe();
      await expect(client.request('briefly', {})).rejects.toMatchObject({ code: BUS_NO_RESPONDERS });
    });

    it('fans a publish out to every subscriber, in order, and to one member per queue group', async () => {
      const w = await world();
      const plain: number[][] = [[], []];
      const grouped: number[][] = [[], []];
      for (let i = 0; i < 2; i++) {
        const bus = await w.connect();
        await bus.subscribe<{ n: number }>('news', async ({ n }) => {
          // Async handler: the next message still waits for this one (ordered delivery).
          await new Promise((resolve) => setTimeout(resolve, n % 3));
          plain[i]!.push(n);
        });
        await bus.subscribe<{ n: number }>('news', ({ n }) => void grouped[i]!.push(n), { queue: 'readers' });
      }
      const publisher = await w.connect();
      const sent = Array.from({ length: 20 }, (_, n) => n);
      for (const n of sent) await publisher.publish('news', { n });
      await waitFor(() => plain[0]!.length === 20 && plain[1]!.length === 20 && grouped[0]!.length + grouped[1]!.length >= 20);
      // A round trip after the burst: anything duplicated would have arrived by now.
      await publisher.handle('barrier', async () => 'ok');
      expect(await publisher.request('barrier', {})).toBe('ok');
      expect(plain[0]).toEqual(sent);
      expect(plain[1]).toEqual(sent);
      expect([...grouped[0]!, ...grouped[1]!].sort((a, b) => a - b)).toEqual(sent);
    });

    it('keeps a subscriber going after its handler throws', async () => {
      const w = await world();
      const bus = await w.connect();
      const got: number[] = [];
      await bus.subscribe<number>('flaky', (n) => {
        if (n === 1) throw new Error('bad message');
        got.push(n);
      });
      for (const n of [0, 1, 2]) await bus.publish('flaky', n);
      await waitFor(() => got.length === 2);
      expect(got).toEqual([0, 2]);
    });

    it('stops delivering to a subscription after unsubscribe', async () => {
      const w = await world();
      const bus = await w.connect();
      const got: string[] = [];
      const sub = await bus.subscribe<string>('topic', (s) => void got.push(s));
      await bus.publish('topic', 'before');
      await waitFor(() => got.length === 1);
      await sub.unsubscribe();
      await bus.publish('topic', 'after');
      const probe: string[] = [];
      await bus.subscribe<string>('topic', (s) => void probe.push(s));
      await bus.publish('topic', 'probe');
      await waitFor(() => probe.length === 1);
      expect(got).toEqual(['before']);
    });

    it('isolates worlds: two prefixes never see each other', async () => {
      const one = await (await world()).connect();
      const two = await (await world()).connect();
      await one.handle('svc', async () => 'one');
      await expect(two.request('svc', {})).rejects.toMatchObject({ code: BUS_NO_RESPONDERS });
      const heardByTwo: unknown[] = [];
      const heardByOne: unknown[] = [];
      await two.subscribe('chatter', (m) => void heardByTwo.push(m));
      await one.subscribe('chatter', (m) => void heardByOne.push(m));
      await one.publish('chatter', 'from one');
      await two.publish('chatter', 'from two');
      await waitFor(() => heardByOne.length === 1 && heardByTwo.length === 1);
      expect(heardByOne).toEqual(['from one']);
      expect(heardByTwo).toEqual(['from two']);
    });

    it('lets running handlers reply on close, then refuses new work', async () => {
      const w = await world();
      const server = await w.connect();
      const client = factory.separateConnections ? await w.connect() : server;
      const started = deferred();
      const release = deferred();
      await server.handle('job', async () => {
        started.resolve();
        await release.promise;
        return 'finished';
      });
      const pending = client.request('job', {});
      await started.promise;
      const closing = server.close();
      release.resolve();
      await closing;
      await expect(pending).resolves.toBe('finished');
      await expect(server.request('job', {})).rejects.toMatchObject({ code: BUS_CLOSED });
      await expect(server.publish('job', {})).rejects.toMatchObject({ code: BUS_CLOSED });
      await server.close(); // twice is fine
    });

    describe('durable subjects', () => {
      it('delivers what was published before the consumer started, and redelivers after a failure', async () => {
        const w = await world();
        const bus = await w.connect();
        await bus.publishDurable('outbox', { n: 1 });
        await bus.publishDurable('outbox', { n: 2 });
        const attempts = new Map<number, number>();
        const done: number[] = [];
        await bus.consumeDurable<{ n: number }>('outbox', async ({ n }) => {
          attempts.set(n, (attempts.get(n) ?? 0) + 1);
          if (n === 1 && attempts.get(n) === 1) throw new Error('transient');
          done.push(n);
        }, { durableName: 'sender', retryDelayMs: 20 });
        await waitFor(() => done.length === 2);
        expect(done.sort()).toEqual([1, 2]);
        expect(attempts.get(1)).toBe(2);
        expect(attempts.get(2)).toBe(1);
      });

      it('shares a durable name between consumers, each message once, and resumes after unsubscribe', async () => {
        const w = await world();
        const bus = await w.connect();
        const other = await w.connect();
        const got: number[][] = [[], []];
        // A short ack wait: a message handed to a consumer just as it stops comes back soon.
        const options = { durableName: 'pool', ackWaitMs: 2000 };
        const subA = await bus.consumeDurable<number>('jobs', async (n) => void got[0]!.push(n), options);
        const subB = await other.consumeDurable<number>('jobs', async (n) => void got[1]!.push(n), options);
        for (let n = 0; n < 10; n++) await bus.publishDurable('jobs', n);
        await waitFor(() => got[0]!.length + got[1]!.length === 10);
        await subA.unsubscribe();
        await subB.unsubscribe();
        for (let n = 10; n < 13; n++) await bus.publishDurable('jobs', n);
        const later: number[] = [];
        await bus.consumeDurable<number>('jobs', async (n) => void later.push(n), options);
        await waitFor(() => later.length === 3);
        expect([...got[0]!, ...got[1]!].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        expect(later.sort((a, b) => a - b)).toEqual([10, 11, 12]);
      });
    });
  });
}
