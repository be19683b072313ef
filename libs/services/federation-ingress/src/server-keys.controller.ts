import { Controller, Get, Inject } from '@nestjs/common';
import type { HomeserverConfig, LoadedSigningKeys } from '@tessera/config';
import { CONFIG, SIGNING_KEYS } from '@tessera/http';
import { buildServerKeys } from './server-keys.js';

/** GET /_matrix/key/v2/server: this server's published signing keys, signed, valid for key_refresh_interval. */
@Controller('_matrix/key/v2/server')
export class ServerKeysController {
  constructor(
    @Inject(CONFIG) private readonly config: HomeserverConfig,
    @Inject(SIGNING_KEYS) private readonly keys: LoadedSigningKeys,
  ) {}

  @Get()
  serverKeys() {
    return buildServerKeys(this.config.serverName, this.keys, this.config.oldSigningKeys, Date.now() + this.config.keyValidityMs);
  }
}
