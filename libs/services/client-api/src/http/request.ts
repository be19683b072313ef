/** What controllers read off a Fastify request. */
export interface ClientRequest {
  ip?: string;
  query?: Record<string, unknown>;
}
