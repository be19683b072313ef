/**
 * Structured JSON logs: one line per record on stdout (or the given destination), tagged with
 * the service name and, inside a request, the request id (see request-context.ts).
 */
import { pino, type DestinationStream, type LevelWithSilent, type Logger } from 'pino';
import { currentRequestId } from './request-context.js';

export interface ServiceLoggerOptions {
  /** e.g. 'client-api'; every line carries it as "service". */
  service: string;
  level: LevelWithSilent;
  /** Where lines go; stdout when absent (tests pass a stream). */
  destination?: DestinationStream;
}

export function createServiceLogger(options: ServiceLoggerOptions): Logger {
  return pino(
    {
      level: options.level,
      base: { service: options.service, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Evaluated for every line: the request id of the async context the line is logged from.
      mixin() {
        const requestId = currentRequestId();
        return requestId === undefined ? {} : { request_id: requestId };
      },
    },
    options.destination,
  );
}
