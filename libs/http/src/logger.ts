import type { LoggerService } from '@nestjs/common';
import type { Logger } from 'pino';
import type { HomeserverConfig } from '@tessera/config';
import { createServiceLogger } from '@tessera/observability';

/** Structured JSON logs on stdout, one line per record, tagged with the service name and the request id. */
export function createLogger(service: string, level: HomeserverConfig['logLevel']): Logger {
  return createServiceLogger({ service, level });
}

/** Nest's own messages (module wiring, route mapping) go through the same pino logger. */
export class NestPinoLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}
  log(message: unknown, context?: string) {
    this.logger.debug({ context }, String(message));
  }
  error(message: unknown, trace?: string, context?: string) {
    this.logger.error({ context, trace }, String(message));
  }
  warn(message: unknown, context?: string) {
    this.logger.warn({ context }, String(message));
  }
  debug(message: unknown, context?: string) {
    this.logger.trace({ context }, String(message));
  }
  verbose(message: unknown, context?: string) {
    this.logger.trace({ context }, String(message));
  }
}
