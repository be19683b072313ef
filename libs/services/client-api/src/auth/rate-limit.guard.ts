import { Inject, Injectable, SetMetadata, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { MatrixError } from '../errors.js';
import { EPHEMERAL_STORE, type EphemeralStore } from '../ephemeral/ephemeral-store.js';
import { CLIENT_API_SETTINGS, type ClientApiSettings, type RateLimitSettings } from '../settings.js';
import type { Requester } from './access-tokens.service.js';

const RATE_LIMITED = 'tessera:rate-limited';

/**
 * Marks a handler as rate-limited (the spec's "Rate-limited: Yes" endpoints). Put the guard
 * after AccessTokenGuard. Handlers in different buckets do not share tokens (as Synapse keeps
 * login, registration and messages apart), so a chatty client cannot lock itself out of login.
 */
export const RateLimited = (bucket = 'default') => SetMetadata(RATE_LIMITED, bucket);

/**
 * Per-IP and per-user token buckets in the ephemeral store (Redis when configured, so all
 * replicas share them). Refusal: 429 M_LIMIT_EXCEEDED with retry_after_ms and Retry-After.
 */
@Injectable()
export class RateLimitGuard implements CanActivate {
  constructor(
    @Inject(Reflector) private readonly reflector: Reflector,
    @Inject(EPHEMERAL_STORE) private readonly store: EphemeralStore,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const bucket = this.reflector.get<string | undefined>(RATE_LIMITED, context.getHandler());
    if (bucket === undefined) return true;
    const http = context.switchToHttp();
    const request = http.getRequest<{ ip?: string; requester?: Requester }>();
    const reply = http.getResponse<{ header(name: string, value: string): unknown }>();
    await this.check(reply, `${bucket}:ip:${request.ip ?? 'unknown'}`, this.settings.rateLimit.perIp);
    if (request.requester) await this.check(reply, `${bucket}:user:${request.requester.userId}`, this.settings.rateLimit.perUser);
    return true;
  }

  private async check(reply: { header(name: string, value: string): unknown }, key: string, limit: RateLimitSettings): Promise<void> {
    if (limit.perSecond <= 0) return;
    const decision = await this.store.consumeRateLimit(key, limit.perSecond, Math.max(1, limit.burst));
    if (!decision.allowed) {
      // The exception filter keeps headers already on the reply.
      reply.header('Retry-After', String(Math.max(1, Math.ceil(decision.retryAfterMs / 1000))));
      throw new MatrixError(429, 'M_LIMIT_EXCEEDED', 'Too many requests: wait before retrying', { retry_after_ms: decision.retryAfterMs });
    }
  }
}
