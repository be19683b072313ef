/**
 * `health.<service>` (request/reply, queue group = the service name): readiness across the bus.
 * A service whose work depends on another (client-api on room-server) is ready only if one
 * replica answers; the reply says which replica did.
 */
export type HealthRequest = Record<string, never>;

export interface HealthReply {
  service: string;
  /** The replica that answered (host name and pid, or a configured name). */
  instance: string;
  status: 'starting' | 'ready' | 'stopping';
  /** Seconds since that replica started. */
  uptimeSeconds: number;
}
