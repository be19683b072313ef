import { EventEmitter } from 'node:events';
import { Injectable } from '@nestjs/common';
import type { ClientChangeMessage, ClientStreamChange } from '@tessera/bus';

/** A change /sync may need to report: which stream, its new position, and who it concerns. */
export type StreamChange = ClientStreamChange;

/** A device's one-time or fallback keys changed (uploaded or claimed): its /sync key counts are stale. */
export interface KeyCountsChange {
  userId: string;
  deviceId: string;
}

/**
 * In-process wake-up for long-polling /sync: each writer here emits after its commit. Carries
 * positions, never the only copy of data (DESIGN): a /sync that missed one catches up by
 * asking the stores "what changed since my position".
 *
 * Changes made here also go to the other client-api replicas (ClientChangesRelay, on the
 * bus subject client.changes); theirs come in through receive().
 */
@Injectable()
export class StreamChanges {
  private readonly emitter = new EventEmitter();
  private relay: ((message: Omit<ClientChangeMessage, 'origin'>) => void) | undefined;

  constructor() {
    // Every waiting /sync listens: there is no meaningful cap.
    this.emitter.setMaxListeners(0);
  }

  emit(change: StreamChange): void {
    this.emitter.emit('change', change);
    this.relay?.({ stream: change });
  }

  /** Sends every change made here to the other replicas too. */
  relayTo(relay: ((message: Omit<ClientChangeMessage, 'origin'>) => void) | undefined): void {
    this.relay = relay;
  }

  /** A change another replica made: acted on here as if made here (and not relayed again). */
  receive(message: ClientChangeMessage): void {
    if (message.stream) this.emitter.emit('change', message.stream);
    if (message.revokedTokenKeys) this.emitter.emit('tokens-revoked', message.revokedTokenKeys);
    if (message.keyCounts) this.emitter.emit('key-counts', message.keyCounts);
  }

  /** Subscribes to every change; returns the unsubscribe function. */
  listen(listener: (change: StreamChange) => void): () => void {
    this.emitter.on('change', listener);
    return () => this.emitter.off('change', listener);
  }

  /** Access tokens (by key) are being revoked: every replica stops trusting its cached copy. */
  emitTokensRevoked(tokenKeys: string[]): void {
    this.emitter.emit('tokens-revoked', tokenKeys);
    this.relay?.({ revokedTokenKeys: tokenKeys });
  }

  listenTokensRevoked(listener: (tokenKeys: string[]) => void): () => void {
    this.emitter.on('tokens-revoked', listener);
    return () => this.emitter.off('tokens-revoked', listener);
  }

  emitKeyCounts(change: KeyCountsChange): void {
    this.emitter.emit('key-counts', change);
    this.relay?.({ keyCounts: change });
  }

  listenKeyCounts(listener: (change: KeyCountsChange) => void): () => void {
    this.emitter.on('key-counts', listener);
    return () => this.emitter.off('key-counts', listener);
  }
}
