/**
 * The notary: /_matrix/key/v2/query (POST batch and GET single). For each server asked about,
 * its key document as it published it (fetched directly when the stored one is too old for
 * minimum_valid_until_ts), countersigned by this server. Our own keys are served as built.
 * No authentication (spec: the key endpoints are unauthenticated).
 */
import { Body, Controller, Get, HttpCode, Inject, Param, Post, Query } from '@nestjs/common';
import { signJson } from '@tessera/protocol';
import { parseServerKeys } from '@tessera/federation-client';
import { DB, MatrixError } from '@tessera/http';
import { getServerKeyDocument, putServerKeyDocument, putStoredServerKeys, type Db } from '@tessera/storage';
import { FederationContext } from './federation-context.js';
import { buildServerKeys } from './server-keys.js';

function isObject(v: unknown): v is Record<string, any> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

@Controller('_matrix/key/v2/query')
export class KeyQueryController {
  constructor(
    @Inject(FederationContext) private readonly ctx: FederationContext,
    @Inject(DB) private readonly db: Db,
  ) {}

  @Get(':serverName')
  async single(@Param('serverName') serverName: string, @Query('minimum_valid_until_ts') min: unknown) {
    const minimum = min === undefined ? 0 : Number(min);
    if (!Number.isSafeInteger(minimum)) throw new MatrixError(400, 'M_INVALID_PARAM', 'minimum_valid_until_ts must be an integer');
    const doc = await this.documentFor(serverName, minimum);
    return { server_keys: doc ? [doc] : [] };
  }

  @Post()
  @HttpCode(200)
  async batch(@Body() body: unknown) {
    if (!isObject(body) || !isObject(body.server_keys)) throw new MatrixError(400, 'M_BAD_JSON', 'server_keys must be an object');
    const out: Record<string, unknown>[] = [];
    for (const [serverName, keys] of Object.entries(body.server_keys)) {
      let minimum = 0;
      if (isObject(keys)) {
        for (const criteria of Object.values(keys)) {
          if (isObject(criteria) && typeof criteria.minimum_valid_until_ts === 'number') minimum = Math.max(minimum, criteria.minimum_valid_until_ts);
        }
      }
      const doc = await this.documentFor(serverName, minimum);
      if (doc) out.push(doc);
    }
    return { server_keys: out };
  }

  /** The server's key document countersigned by us, or null when it cannot be had. */
  private async documentFor(serverName: string, minimum: number): Promise<Record<string, unknown> | null> {
    if (serverName === this.ctx.serverName) {
      return buildServerKeys(this.ctx.serverName, this.ctx.keys, this.ctx.config.oldSigningKeys, Date.now() + this.ctx.config.keyValidityMs) as unknown as Record<string, unknown>;
    }
    let stored = await getServerKeyDocument(this.db, serverName);
    if (!stored || stored.validUntilTs < Math.max(minimum, Date.now())) {
      try {
        const doc = await this.ctx.client.request<Record<string, unknown>>({ destination: serverName, method: 'GET', path: '/_matrix/key/v2/server', signed: false, timeoutMs: 10_000 });
        const now = Date.now();
        const keys = parseServerKeys(doc, serverName, now);
        await putStoredServerKeys(this.db, keys.map((k) => ({ serverName, keyId: k.keyId, publicKeyBase64: k.publicKeyBase64, validUntilTs: k.validUntilTs, expiredTs: k.expiredTs ?? null, fetchedTs: now })));
        const validUntil = typeof doc.valid_until_ts === 'number' ? doc.valid_until_ts : 0;
        await putServerKeyDocument(this.db, serverName, doc, validUntil, now);
        stored = { document: doc, validUntilTs: validUntil, fetchedTs: now };
      } catch {
        // Unreachable or invalid: serve what we have, if anything (the requester checks validity).
      }
    }
    if (!stored) return null;
    // Countersign: keep the server's own signatures, add ours with every current key.
    let doc = stored.document;
    for (const key of this.ctx.keys.all) doc = signJson(doc, this.ctx.serverName, key);
    return doc;
  }
}
