import { EventEmitter } from 'node:events';
import { Injectable } from '@nestjs/common';

/** A change /sync may need to report: which stream, its new position, and who it concerns. */
export type StreamChange =
  | { stream: 'account_data'; position: number; userId: string }
  | { stream: 'to_device'; position: number; userId: string; deviceIds: string[] }
  | { stream: 'device_lists'; position: number; userId: string }
  | { stream: 'receipts'; position: number; roomId: string }
  | { stream: 'typing'; position: number; roomId: string }
  | { stream: 'presence'; position: number; userId: string };

/** A device's one-time or fallback keys changed (uploaded or claimed): its /sync key counts are stale. */
export interface KeyCountsChange {
  userId: string;
  deviceId: string;
}

/**
 * In-process wake-up for long-polling /sync: each writer here emits after its commit. Carries
 * positions, never the only copy of data (DESIGN): a /sync that missed one catches up by
 * asking the stores "what changed since my position".
 * TODO(multi-replica): relay these over the bus so a /sync waiting on another replica wakes too.
 */
@Injectable()
export class StreamChanges {
  private readonly emitter = new EventEmitter();

  constructor() {
    // Every waiting /sync listens: there is no meaningful cap.
    this.emitter.setMaxListeners(0);
  }

  emit(change: StreamChange): void {
    this.emitter.emit('change', change);
  }

  /** Subscribes to every change; returns the unsubscribe function. */
  listen(listener: (change: StreamChange) => void): () => void {
    this.emitter.on('change', listener);
    return () => this.emitter.off('change', listener);
  }

  /** Access tokens (by key) are being revoked: every replica stops trusting its cached copy. */
  emitTokensRevoked(tokenKeys: string[]): void {
    this.emitter.emit('tokens-revoked', tokenKeys);
  }

  listenTokensRevoked(listener: (tokenKeys: string[]) => void): () => void {
    this.emitter.on('tokens-revoked', listener);
    return () => this.emitter.off('tokens-revoked', listener);
  }

  emitKeyCounts(change: KeyCountsChange): void {
    this.emitter.emit('key-counts', change);
  }

  listenKeyCounts(listener: (change: KeyCountsChange) => void): () => void {
    this.emitter.on('key-counts', listener);
    return () => this.emitter.off('key-counts', listener);
  }
}
