// The room-server service as its own process (distributed mode: PostgreSQL + NATS from the configuration).
import { runServicesMain } from '@tessera/http';
import { roomServerService } from '@tessera/room-server-service';

await runServicesMain([roomServerService], { mode: 'distributed', name: 'room-server' });
