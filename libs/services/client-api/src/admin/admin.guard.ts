import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { Db } from '@tessera/storage';
import type { Requester } from '../auth/access-tokens.service.js';
import { forbidden } from '../errors.js';
import { accountsStore } from '../storage/accounts-store.js';
import { CLIENT_API_DB } from '../tokens.js';

/**
 * Synapse's admin API (/_synapse/admin/...): the requester must be a server admin, else 403
 * M_FORBIDDEN. Runs after AccessTokenGuard (`@UseGuards(AccessTokenGuard, ServerAdminGuard)`),
 * which answers 401 without a valid token.
 */
@Injectable()
export class ServerAdminGuard implements CanActivate {
  constructor(@Inject(CLIENT_API_DB) private readonly db: Db) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const requester = context.switchToHttp().getRequest<{ requester?: Requester }>().requester;
    if (!requester) throw new Error('ServerAdminGuard used without AccessTokenGuard before it');
    if (!(await accountsStore.get(this.db, requester.userId))?.is_admin) throw forbidden('You are not a server admin');
    return true;
  }
}
