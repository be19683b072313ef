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
