// The client-api service as its own process (distributed mode: PostgreSQL + NATS from the configuration).
import { runServicesMain } from '@tessera/http';
import { clientApiService } from '@tessera/client-api-service';

await runServicesMain([clientApiService], { mode: 'distributed', name: 'client-api' });
