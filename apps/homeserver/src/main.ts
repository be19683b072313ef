// The whole homeserver in one process: the embedded default of `npm start`. PGlite in ./data
// and the in-process bus, unless DATABASE_URL / NATS_URL (or the config file) name real ones.
import { clientApiService } from '@tessera/client-api-service';
import { fanoutSenderService } from '@tessera/fanout-sender-service';
import { federationIngressService } from '@tessera/federation-ingress-service';
import { runServicesMain, startIdleMemoryTrim, type GcFunction } from '@tessera/http';
import { persistenceService } from '@tessera/persistence-service';
import { roomServerService } from '@tessera/room-server-service';

await runServicesMain([persistenceService, roomServerService, fanoutSenderService, clientApiService, federationIngressService], {
  mode: 'embedded',
  name: 'homeserver',
});

// npm start runs node with --expose-gc for the idle trim: startup (Nest's module scan, migrations,
// PGlite's 9 MB pglite.wasm file buffer) and every busy spell grow the heap, the young generation
// above all, and V8 gives nothing back while no collection runs, which is all the time when idle.
// With it the server keeps node's full-size young generation under load (a 2 MB one cost 20-30%
// of the send rate) and an idle footprint as small as with a 2 MB one (docs/operations.md).
const gc = (globalThis as { gc?: GcFunction }).gc;
if (gc) startIdleMemoryTrim({ gc });
