import { describe, expect, it } from 'vitest';
import { createMetrics, type TesseraMetrics } from './metrics.js';

/** The value of one series (for histograms, pass the _count or _sum name), or undefined when absent. */
async function valueOf(metrics: TesseraMetrics, name: string, labels: Record<string, string>): Promise<number | undefined> {
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    for (const v of metric.values) {
      const series = (v as { metricName?: string }).metricName ?? metric.name;
      const sameLabels = Object.keys(v.labels).length === Object.keys(labels).length && Object.entries(labels).every(([k, x]) => String(v.labels[k]) === x);
      if (series === name && sameLabels) return v.value;
    }
  }
  return undefined;
}

describe('TesseraMetrics', () => {
  it('exposes every tessera metric with the service label', async () => {
    const metrics = createMetrics({ service: 'persistence', processMetrics: false });
    metrics.eventsPersisted.inc(3);
    metrics.federationQueueDepth.set({ shard: '7' }, 42);
    metrics.federationTransactions.inc({ shard: '7', result: 'success' });
    metrics.federationTransactions.inc({ shard: '7', result: 'failure' }, 2);
    await metrics.timeStateResolution('11', () => 'resolved');
    const svc = { service: 'persistence' };
    expect(await valueOf(metrics, 'tessera_events_persisted_total', svc)).toBe(3);
    expect(await valueOf(metrics, 'tessera_federation_queue_depth', { ...svc, shard: '7' })).toBe(42);
    expect(await valueOf(metrics, 'tessera_federation_transactions_total', { ...svc, shard: '7', result: 'success' })).toBe(1);
    expect(await valueOf(metrics, 'tessera_federation_transactions_total', { ...svc, shard: '7', result: 'failure' })).toBe(2);
    expect(await valueOf(metrics, 'tessera_state_resolution_duration_seconds_count', { ...svc, room_version: '11' })).toBe(1);
    const text = await metrics.render();
    expect(text).toMatch(/^tessera_events_persisted_total\{service="persistence"\} 3$/m);
    for (const name of [
      'tessera_http_request_duration_seconds',
      'tessera_bus_request_duration_seconds',
      'tessera_bus_handler_duration_seconds',
      'tessera_bus_handlers_in_flight',
    ]) {
      expect(text).toContain(`# TYPE ${name}`);
    }
    expect(metrics.contentType).toMatch(/^text\/plain/);
  });

  it('keeps each process registry apart and includes process metrics by default', async () => {
    const a = createMetrics({ service: 'a' });
    const b = createMetrics({ service: 'b', processMetrics: false });
    a.eventsPersisted.inc();
    expect(await valueOf(b, 'tessera_events_persisted_total', { service: 'b' })).toBe(0);
    expect(await valueOf(a, 'tessera_events_persisted_total', { service: 'a' })).toBe(1);
    expect(await valueOf(a, 'process_resident_memory_bytes', { service: 'a' })).toBeGreaterThan(0);
    expect(await valueOf(b, 'process_resident_memory_bytes', { service: 'b' })).toBeUndefined();
  });

  it('times a failing state resolution and passes the error through', async () => {
    const metrics = createMetrics({ service: 'room-server', processMetrics: false });
    await expect(
      metrics.timeStateResolution('12', () => {
        throw new Error('conflict too deep');
      }),
    ).rejects.toThrow('conflict too deep');
    expect(await valueOf(metrics, 'tessera_state_resolution_duration_seconds_count', { service: 'room-server', room_version: '12' })).toBe(1);
  });

  it('forgets the queue depth of a released shard', async () => {
    const metrics = createMetrics({ service: 'fanout-sender', processMetrics: false });
    metrics.federationQueueDepth.set({ shard: '1' }, 5);
    metrics.federationQueueDepth.set({ shard: '2' }, 6);
    metrics.releaseFederationShard(1);
    expect(await valueOf(metrics, 'tessera_federation_queue_depth', { service: 'fanout-sender', shard: '1' })).toBeUndefined();
    expect(await valueOf(metrics, 'tessera_federation_queue_depth', { service: 'fanout-sender', shard: '2' })).toBe(6);
  });
});
