/**
 * health.<service> (request/reply, queue group = the service name): a readiness probe across the
 * bus. client-api is ready only if a room-server answers; the answer says which instance did.
 */
export type HealthRequest = Record<string, never>;

export interface HealthResponse {
  service: string;
  /** The replica that answered (host name and process id, or a configured name). */
  instance: string;
  status: 'ready' | 'starting' | 'stopping';
  /** Seconds since the instance started. */
  uptime_s: number;
}
