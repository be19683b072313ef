import { Controller, Get, Inject, Module } from '@nestjs/common';
import type { HomeserverConfig } from '@tessera/config';
import { MatrixError } from './matrix-error.js';
import { CONFIG } from './tokens.js';

/**
 * /.well-known/matrix/{client,server,support}: served only when the operator configured them
 * (well_known in the config); otherwise 404 M_NOT_FOUND, which the spec's discovery
 * algorithms treat as "no delegation".
 */
@Controller('.well-known/matrix')
export class WellKnownController {
  constructor(@Inject(CONFIG) private readonly config: HomeserverConfig) {}

  @Get('client')
  client() {
    const c = this.config.wellKnown.client;
    if (!c) throw new MatrixError(404, 'M_NOT_FOUND', '.well-known/matrix/client is not configured on this server');
    const body: Record<string, unknown> = { 'm.homeserver': { base_url: c.baseUrl } };
    if (c.identityServerBaseUrl) body['m.identity_server'] = { base_url: c.identityServerBaseUrl };
    return body;
  }

  @Get('server')
  server() {
    const s = this.config.wellKnown.server;
    if (!s) throw new MatrixError(404, 'M_NOT_FOUND', '.well-known/matrix/server is not configured on this server');
    return { 'm.server': s.delegation };
  }

  /** Spec v1.10+: the admins' contacts and support page, when the operator configured them. */
  @Get('support')
  support() {
    const s = this.config.wellKnown.support;
    if (!s) throw new MatrixError(404, 'M_NOT_FOUND', '.well-known/matrix/support is not configured on this server');
    const body: Record<string, unknown> = {};
    if (s.contacts) {
      body.contacts = s.contacts.map((c) => ({
        role: c.role,
        ...(c.matrixId !== undefined ? { matrix_id: c.matrixId } : {}),
        ...(c.emailAddress !== undefined ? { email_address: c.emailAddress } : {}),
      }));
    }
    if (s.supportPage !== undefined) body.support_page = s.supportPage;
    return body;
  }
}

@Module({ controllers: [WellKnownController] })
export class WellKnownModule {}
