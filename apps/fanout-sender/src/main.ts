// The fanout-sender service as its own process (distributed mode: PostgreSQL + NATS from the configuration).
import { runServicesMain } from '@tessera/http';
import { fanoutSenderService } from '@tessera/fanout-sender-service';

await runServicesMain([fanoutSenderService], { mode: 'distributed', name: 'fanout-sender' });
