import { connect } from 'nats';
import { afterAll, describe, expect, it } from 'vitest';
import { NATS_URL, services, uniqueName } from '@tessera/testing';
import { createNatsBus } from './nats.js';
import { busContractSuite, waitFor } from './transport-contract.js';
import type { BusTransport } from './transport.js';

const prefixes: string[] = [];

function newPrefix(): string {
  const prefix = uniqueName('busc');
  prefixes.push(prefix);
  return prefix;
}

busContractSuite({
  name: 'NATS',
  skip: !services.nats,
  separateConnections: true,
  async newWorld() {
    const prefix = newPrefix();
    const opened: BusTransport[] = [];
    return {
      async connect() {
        const bus = await createNatsBus({ url: NATS_URL, prefix, name: `contract-${opened.length}`, onHandlerError: () => undefined });
        opened.push(bus);
        return bus;
      },
      closeAll: async () => void (await Promise.all(opened.map((b) => b.close()))),
    };
  },
});

describe.skipIf(!services.nats)('NATS bus specifics', () => {
  it('keeps durable messages for a consumer across a restart of every process', async () => {
    const prefix = newPrefix();
    const first = await createNatsBus({ url: NATS_URL, prefix, name: 'before-restart' });
    const got: string[] = [];
    await first.consumeDurable<string>('outbox', async (s) => void got.push(s), { durableName: 'fanout' });
    await first.publishDurable('outbox', 'one');
    await waitFor(() => got.length === 1);
    await first.close();

    // Published while no consumer runs.
    const publisher = await createNatsBus({ url: NATS_URL, prefix, name: 'publisher' });
    await publisher.publishDurable('outbox', 'two');
    await publisher.close();

    const second = await createNatsBus({ url: NATS_URL, prefix, name: 'after-restart' });
    const after: string[] = [];
    await second.consumeDurable<string>('outbox', async (s) => void after.push(s), { durableName: 'fanout' });
    await waitFor(() => after.length === 1);
    await second.close();
    expect(got).toEqual(['one']);
    expect(after).toEqual(['two']);
  });

  it('answers a raw message that is not JSON with BUS_BAD_PAYLOAD instead of crashing', async () => {
    const prefix = newPrefix();
    const bus = await createNatsBus({ url: NATS_URL, prefix, name: 'bad-json' });
    const raw = await connect({ servers: NATS_URL });
    try {
      await bus.handle('svc', async () => 'fine');
      const reply = await raw.request(`${prefix}.svc`, new TextEncoder().encode('{not json'), { timeout: 5000 });
      const body = JSON.parse(new TextDecoder().decode(reply.data));
      expect(body).toMatchObject({ ok: false, error: { code: 'BUS_BAD_PAYLOAD' } });
      const bus2 = await createNatsBus({ url: NATS_URL, prefix, name: 'bad-json-2' });
      expect(await bus2.request('svc', {})).toBe('fine');
      await bus2.close();
    } finally {
      await raw.close();
      await bus.close();
    }
  });

  it('refuses an invalid prefix', async () => {
    await expect(createNatsBus({ url: NATS_URL, prefix: 'has space', name: 'x' })).rejects.toMatchObject({ code: 'BUS_BAD_SUBJECT' });
  });

  afterAll(async () => {
    // Remove the JetStream streams this file created: they outlive the connections.
    const nc = await connect({ servers: NATS_URL });
    try {
      const jsm = await nc.jetstreamManager();
      for await (const stream of jsm.streams.list()) {
        if (prefixes.some((p) => stream.config.name.startsWith(`${p}_`))) await jsm.streams.delete(stream.config.name);
      }
    } finally {
      await nc.close();
    }
  });
  it('a handler running when close() begins may still make its own requests before it replies', async () => {
    const prefix = newPrefix();
    const [front, back, client] = await Promise.all(
      ['front', 'back', 'client'].map((name) => createNatsBus({ url: NATS_URL, prefix, name: `close-${name}` })),
    );
    try {
      await back.handle<{ n: number }, number>('inner', async ({ n }) => n * 2);
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let started = false;
      // As room-server does: the reply depends on a request of its own (an append to persistence).
      await front.handle<{ n: number }, number>('outer', async ({ n }) => {
        started = true;
        await gate;
        return front.request<{ n: number }, number>('inner', { n });
      });
      const pending = client.request<{ n: number }, number>('outer', { n: 21 });
      await waitFor(() => started);
      const closing = front.close();
      release();
      await closing;
      await expect(pending).resolves.toBe(42);
      await expect(front.request('inner', { n: 1 })).rejects.toMatchObject({ code: 'BUS_CLOSED' });
    } finally {
      await Promise.all([front.close(), back.close(), client.close()]);
    }
  });
});
