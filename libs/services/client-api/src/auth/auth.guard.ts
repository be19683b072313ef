import { createParamDecorator, Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { MatrixError } from '../errors.js';
import { AccessTokensService, type Requester } from './access-tokens.service.js';

interface RequestWithRequester {
  headers: Record<string, string | string[] | undefined>;
  query?: Record<string, unknown>;
  ip?: string;
  requester?: Requester;
}

/** The access token of a request: `Authorization: Bearer <token>` or the `access_token` query parameter. */
export function accessTokenOf(request: RequestWithRequester): string | undefined {
  const header = request.headers.authorization;
  if (typeof header === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match) return match[1];
  }
  const query = request.query?.access_token;
  return typeof query === 'string' && query !== '' ? query : undefined;
}

/** 401 for an access token past its expiry: a soft logout, the client refreshes (POST /refresh) or logs in to the same device. */
export function expiredTokenError(): MatrixError {
  return new MatrixError(401, 'M_UNKNOWN_TOKEN', 'Access token has expired: refresh it with POST /refresh', { soft_logout: true });
}

/**
 * Guards every endpoint that needs an access token: 401 M_MISSING_TOKEN without one,
 * 401 M_UNKNOWN_TOKEN (soft_logout false) for an unknown or revoked one, soft_logout true for
 * an expired one. On success the
 * requester is on the request for @CurrentRequester().
 */
@Injectable()
export class AccessTokenGuard implements CanActivate {
  constructor(@Inject(AccessTokensService) private readonly tokens: AccessTokensService) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<RequestWithRequester>();
    const token = accessTokenOf(request);
    if (token === undefined) throw new MatrixError(401, 'M_MISSING_TOKEN', 'Missing access token: send it as "Authorization: Bearer <token>"');
    const requester = await this.tokens.check(token, request.ip);
    if (requester === 'expired') throw expiredTokenError();
    if (!requester) throw new MatrixError(401, 'M_UNKNOWN_TOKEN', 'Unrecognised access token: log in again', { soft_logout: false });
    request.requester = requester;
    return true;
  }
}

/** The authenticated requester (use on handlers behind AccessTokenGuard). */
export const CurrentRequester = createParamDecorator((_data: unknown, context: ExecutionContext): Requester => {
  const requester = context.switchToHttp().getRequest<RequestWithRequester>().requester;
  if (!requester) throw new Error('CurrentRequester used on a handler without AccessTokenGuard');
  return requester;
});

/** The requester when the request carried a valid token (for endpoints where auth is optional). */
export function requesterOf(request: unknown): Requester | undefined {
  return (request as RequestWithRequester).requester;
}
