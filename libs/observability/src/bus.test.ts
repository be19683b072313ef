import { afterEach, describe, expect, it } from 'vitest';
import { BusError, createInProcessBus, createNatsBus, type BusTransport } from '@tessera/bus';
import { NATS_URL, services, uniqueName } from '@tessera/testing';
import { REQUEST_ID_FIELD, instrumentBus } from './bus.js';
import { createMetrics, type TesseraMetrics } from './metrics.js';
import { currentRequestId, runWithRequestId } from './request-context.js';

/** Two ends of one bus: over NATS, two connections (the request id must cross the wire). */
interface World {
  sender: BusTransport;
  receiver: BusTransport;
}

const worlds: Array<{ name: string; skip: boolean; open(): Promise<World> }> = [
  {
    name: 'in-process',
    skip: false,
    async open() {
      const bus = createInProcessBus({ onHandlerError: () => undefined });
      return { sender: bus, receiver: bus };
    },
  },
  {
    name: 'NATS',
    skip: !services.nats,
    async open() {
      const prefix = uniqueName('obs');
      const sender = await createNatsBus({ url: NATS_URL, prefix, name: 'obs-sender', onHandlerError: () => undefined });
      const receiver = await createNatsBus({ url: NATS_URL, prefix, name: 'obs-receiver', onHandlerError: () => undefined });
      return { sender, receiver };
    },
  },
];

async function sampleCount(metrics: TesseraMetrics, name: string, labels: Record<string, string>): Promise<number> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  const sample = metric?.values.find(
    (v) => (v as { metricName?: string }).metricName === `${name}_count` && Object.entries(labels).every(([k, val]) => v.labels[k] === val),
  );
  return sample?.value ?? 0;
}

for (const world of worlds) {
  describe.skipIf(world.skip)(`instrumented bus over ${world.name}`, () => {
    const open: BusTransport[] = [];
    afterEach(async () => {
      await Promise.all(open.splice(0).map((b) => b.close()));
    });

    async function setup() {
      const { sender, receiver } = await world.open();
      open.push(sender);
      if (receiver !== sender) open.push(receiver);
      const senderMetrics = createMetrics({ service: 'client-api', processMetrics: false });
      const receiverMetrics = createMetrics({ service: 'room-server', processMetrics: false });
      return {
        sender: instrumentBus(sender, { metrics: senderMetrics }),
        receiver: instrumentBus(receiver, { metrics: receiverMetrics }),
        rawReceiver: receiver,
        senderMetrics,
        receiverMetrics,
      };
    }

    it('carries the request id of a request to its handler, and hands the handler the payload as sent', async () => {
      const { sender, receiver, senderMetrics, receiverMetrics } = await setup();
      const seen: Array<{ payload: unknown; requestId: string | undefined }> = [];
      await receiver.handle<{ room: string }, string>('obs.echo', async (payload) => {
        seen.push({ payload, requestId: currentRequestId() });
        return `ok ${payload.room}`;
      });
      const reply = await runWithRequestId('req-42', () => sender.request('obs.echo', { room: '!r:x' }));
      expect(reply).toBe('ok !r:x');
      // Outside any request: nothing is added, and the handler runs without an id.
      await sender.request('obs.echo', { room: '!s:x' });
      expect(seen).toEqual([
        { payload: { room: '!r:x' }, requestId: 'req-42' },
        { payload: { room: '!s:x' }, requestId: undefined },
      ]);
      expect(await sampleCount(senderMetrics, 'tessera_bus_request_duration_seconds', { subject: 'obs.echo', outcome: 'ok' })).toBe(2);
      expect(
        await sampleCount(receiverMetrics, 'tessera_bus_handler_duration_seconds', { subject: 'obs.echo', kind: 'request', outcome: 'ok' }),
      ).toBe(2);
    });

    it('records the error code of a refused request and still passes the error through', async () => {
      const { sender, receiver, senderMetrics, receiverMetrics } = await setup();
      await receiver.handle('obs.refuse', async () => {
        throw new BusError('M_FORBIDDEN', 'not in room');
      });
      await expect(runWithRequestId('r', () => sender.request('obs.refuse', {}))).rejects.toMatchObject({ code: 'M_FORBIDDEN' });
      expect(await sampleCount(senderMetrics, 'tessera_bus_request_duration_seconds', { subject: 'obs.refuse', outcome: 'M_FORBIDDEN' })).toBe(1);
      expect(
        await sampleCount(receiverMetrics, 'tessera_bus_handler_duration_seconds', { subject: 'obs.refuse', outcome: 'M_FORBIDDEN' }),
      ).toBe(1);
      expect(await sampleCount(senderMetrics, 'tessera_bus_request_duration_seconds', { subject: 'obs.none', outcome: 'BUS_NO_RESPONDERS' })).toBe(0);
      await expect(sender.request('obs.none', {}, { timeoutMs: 200 })).rejects.toBeInstanceOf(BusError);
    });

    it('carries the request id on notifications and durable messages', async () => {
      const { sender, receiver } = await setup();
      const notified: Array<[unknown, string | undefined]> = [];
      const durable: Array<[unknown, string | undefined]> = [];
      await receiver.subscribe('obs.note', (p) => void notified.push([p, currentRequestId()]));
      await receiver.consumeDurable('obs.outbox', async (p) => void durable.push([p, currentRequestId()]), {
        durableName: uniqueName('obsd'),
      });
      await runWithRequestId('note-1', async () => {
        await sender.publish('obs.note', { position: 1 });
        await sender.publishDurable('obs.outbox', { destination: 'remote.example' });
      });
      await sender.publish('obs.note', 'not an object');
      await waitUntil(() => notified.length === 2 && durable.length === 1);
      expect(notified).toEqual([
        [{ position: 1 }, 'note-1'],
        ['not an object', undefined],
      ]);
      expect(durable).toEqual([[{ destination: 'remote.example' }, 'note-1']]);
    });

    it('sends the id as one extra member a receiver without the decorator can ignore', async () => {
      const { sender, rawReceiver } = await setup();
      const got: unknown[] = [];
      await rawReceiver.handle('obs.raw', async (p) => void got.push(p));
      await runWithRequestId('raw-1', () => sender.request('obs.raw', { a: 1 }));
      await sender.request('obs.raw', [1, 2]);
      expect(got).toEqual([{ a: 1, [REQUEST_ID_FIELD]: 'raw-1' }, [1, 2]]);
    });

    it('stops taking messages on shutdown while running handlers finish and reply', async () => {
      const { sender, receiver } = await setup();
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let started!: () => void;
      const running = new Promise<void>((r) => (started = r));
      await receiver.handle<{ n: number }, number>('obs.slow', async ({ n }) => {
        started();
        await gate;
        return n * 2;
      });
      const inFlight = sender.request<{ n: number }, number>('obs.slow', { n: 21 }, { timeoutMs: 10_000 });
      await running;
      await receiver.stopTakingMessages();
      // Nobody handles the subject any more, but the answer to the running call still goes out.
      await expect(sender.request('obs.slow', { n: 1 }, { timeoutMs: 300 })).rejects.toBeInstanceOf(BusError);
      release();
      expect(await inFlight).toBe(42);
      // A subscription made after the shutdown began takes nothing.
      const late: unknown[] = [];
      await receiver.subscribe('obs.late', (p) => void late.push(p));
      await sender.publish('obs.late', { x: 1 });
      await new Promise((r) => setTimeout(r, 50));
      expect(late).toEqual([]);
    });

    it('ignores a malformed request id from the wire', async () => {
      const { receiver, rawReceiver } = await setup();
      const ids: Array<string | undefined> = [];
      await receiver.handle('obs.bad', async (p) => {
        ids.push(currentRequestId());
        return p;
      });
      // A sender without the decorator puts garbage in the member: the handler gets no id and a clean payload.
      const reply = await rawReceiver.request('obs.bad', { x: 1, [REQUEST_ID_FIELD]: 'bad id\n' });
      expect(reply).toEqual({ x: 1 });
      expect(ids).toEqual([undefined]);
    });
  });
}

async function waitUntil(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!check()) throw new Error('condition not reached');
}
