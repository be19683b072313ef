// The federation-ingress service as its own process (distributed mode: PostgreSQL + NATS from the configuration).
import { runServicesMain } from '@tessera/http';
import { federationIngressService } from '@tessera/federation-ingress-service';

await runServicesMain([federationIngressService], { mode: 'distributed', name: 'federation-ingress' });
