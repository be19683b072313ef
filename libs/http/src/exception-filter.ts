import { Catch, HttpException, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { MatrixError } from './matrix-error.js';
import type { RouteTable } from './route-table.js';

/**
 * Renders every error as a Matrix error body; nothing escapes as a stack trace or a crash.
 * MatrixError passes as thrown. Framework errors are mapped by status (unknown route 404 and
 * wrong method 405 -> M_UNRECOGNIZED, 413 -> M_TOO_LARGE, other 4xx -> M_UNKNOWN with their
 * message), and anything unexpected becomes 500 M_UNKNOWN and is logged.
 */
@Catch()
export class MatrixExceptionFilter implements ExceptionFilter {
  constructor(
    private readonly routes: RouteTable,
    private readonly logger: Logger,
  ) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const reply = http.getResponse<FastifyReply>();
    const error = this.toMatrixError(exception, request);
    if (error.status >= 500) {
      this.logger.error({ err: exception, method: request.method, url: request.url }, 'request failed');
    }
    if (reply.sent) return;
    void reply.status(error.status).header('content-type', 'application/json').send(JSON.stringify(error.toJSON()));
  }

  private toMatrixError(exception: unknown, request: FastifyRequest): MatrixError {
    if (exception instanceof MatrixError) return exception;
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      if (status === 404 && !request.routeOptions?.url) {
        // Nest's not-found handler: no route matched this method and path.
        const allowed = this.routes.methodsFor(request.url);
        return allowed.length > 0
          ? new MatrixError(405, 'M_UNRECOGNIZED', `${request.method} is not supported on this endpoint (allowed: ${allowed.join(', ')})`)
          : new MatrixError(404, 'M_UNRECOGNIZED', 'Unrecognized request');
      }
      if (status === 413) return new MatrixError(413, 'M_TOO_LARGE', 'The request body is too large');
      if (status === 404) return new MatrixError(404, 'M_NOT_FOUND', exception.message);
      if (status >= 400 && status < 500) return new MatrixError(status, 'M_UNKNOWN', exception.message);
    }
    return new MatrixError(500, 'M_UNKNOWN', 'Internal server error');
  }
}
