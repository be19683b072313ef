// The whole homeserver in one process: the embedded default of `npm start`. PGlite in ./data
// and the in-process bus, unless DATABASE_URL / NATS_URL (or the config file) name real ones.
import { clientApiService } from '@tessera/client-api-service';
import { fanoutSenderService } from '@tessera/fanout-sender-service';
import { federationIngressService } from '@tessera/federation-ingress-service';
import { runServicesMain } from '@tessera/http';
import { persistenceService } from '@tessera/persistence-service';
import { roomServerService } from '@tessera/room-server-service';

await runServicesMain([persistenceService, roomServerService, fanoutSenderService, clientApiService, federationIngressService], {
  mode: 'embedded',
  name: 'homeserver',
});

// npm start runs node with --expose-gc for this one collection: startup leaves garbage (Nest's
// module scan, migrations, PGlite's 9 MB pglite.wasm file buffer, compiled already) that an idle
// server would otherwise keep resident until its heap grows enough to trigger a major GC.
// Measured idle (bench/startup.bench.ts conditions): ~9 MB less RSS on a restart, no change on a
// new folder, where the migrations already caused a major GC.
(globalThis as { gc?: () => void }).gc?.();
