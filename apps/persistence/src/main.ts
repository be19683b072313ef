// The persistence service as its own process (distributed mode: PostgreSQL + NATS from the configuration).
import { runServicesMain } from '@tessera/http';
import { persistenceService } from '@tessera/persistence-service';

await runServicesMain([persistenceService], { mode: 'distributed', name: 'persistence' });
