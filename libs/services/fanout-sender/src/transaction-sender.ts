/**
 * PUT /_matrix/federation/v1/send/{txnId}: one signed transaction to one server.
 */
import { randomBytes } from 'node:crypto';
import type { FederationClient } from '@tessera/federation-client';
import type { Edu } from './destination-queue.js';

export interface PduOutcome {
  error?: string;
}

export interface TransactionSender {
  /** Resolves with the per-PDU results once the remote accepted the transaction (HTTP 200); rejects otherwise. */
  send(destination: string, pdus: Record<string, unknown>[], edus: Edu[]): Promise<Record<string, PduOutcome>>;
}

export class FederationTransactionSender implements TransactionSender {
  /** Unique per process and increasing: a transaction id is never reused for different content. */
  private readonly prefix = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  private counter = 0;

  constructor(
    private readonly client: Pick<FederationClient, 'put'>,
    private readonly origin: string,
    private readonly timeoutMs: number,
  ) {}

  async send(destination: string, pdus: Record<string, unknown>[], edus: Edu[]): Promise<Record<string, PduOutcome>> {
    const txnId = `${this.prefix}.${++this.counter}`;
    const body = { origin: this.origin, origin_server_ts: Date.now(), pdus, edus };
    const reply = await this.client.put<{ pdus?: Record<string, PduOutcome> }>(destination, `/_matrix/federation/v1/send/${encodeURIComponent(txnId)}`, body, {
      timeoutMs: this.timeoutMs,
    });
    const results = reply && typeof reply === 'object' && reply.pdus && typeof reply.pdus === 'object' ? reply.pdus : {};
    return results;
  }
}
