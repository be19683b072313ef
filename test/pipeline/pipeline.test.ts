import { describe } from 'vitest';
import { services } from '@tessera/testing';
import { distributedPipeline, embeddedPipeline } from './harness.js';
import { pipelineSuite } from './pipeline-suite.js';

pipelineSuite('pipeline, embedded (PGlite + in-process bus, one process)', embeddedPipeline, { realKills: false });

describe.skipIf(!services.postgres || !services.nats)('distributed', () => {
  pipelineSuite('pipeline, distributed (PostgreSQL + NATS, separate processes)', distributedPipeline, { realKills: true });
});
