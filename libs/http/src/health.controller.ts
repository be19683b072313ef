import { Controller, Get, Inject, Module, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { RUNTIME } from './tokens.js';
import type { ServiceRuntime } from './runtime.js';

/**
 * Probes for Kubernetes and compose. Liveness: the process answers HTTP. Readiness: the
 * process's dependencies (database, bus) answer and it is not shutting down; 503 otherwise,
 * with the failing check named.
 */
@Controller('health')
export class HealthController {
  constructor(@Inject(RUNTIME) private readonly runtime: ServiceRuntime) {}

  @Get('live')
  live() {
    return { status: 'ok' };
  }

  @Get('ready')
  async ready(@Res() reply: FastifyReply) {
    const result = await this.runtime.checkReadiness();
    await reply.status(result.ready ? 200 : 503).send(result);
  }
}

@Module({ controllers: [HealthController] })
export class HealthModule {}
