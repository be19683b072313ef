import { AsyncLocalStorage } from 'node:async_hooks';
import { describe, expect, it } from 'vitest';
import { createInProcessBus } from './in-process.js';
import { busContractSuite } from './transport-contract.js';
import type { BusTransport } from './transport.js';

busContractSuite({
  name: 'in-process',
  skip: false,
  separateConnections: false,
  async newWorld() {
    const bus: BusTransport = createInProcessBus({ onHandlerError: () => undefined });
    return { connect: async () => bus, closeAll: () => bus.close() };
  },
});

describe('in-process bus specifics', () => {
  it("runs handlers in the subscriber's async context, not the caller's", async () => {
    // A caller inside a db transaction must not make the handler look like it is inside it too.
    const context = new AsyncLocalStorage<string>();
    const bus = createInProcessBus();
    try {
      await context.run('subscriber', () => bus.handle('whoami', async () => context.getStore() ?? 'none'));
      expect(await context.run('caller', () => bus.request('whoami', {}))).toBe('subscriber');
    } finally {
      await bus.close();
    }
  });
});
