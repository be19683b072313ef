import type { Provider } from '@nestjs/common';
import type { HomeserverConfig } from '@tessera/config';
import { CONFIG } from '@tessera/http';
import { CLIENT_API_SETTINGS_OVERRIDES, type ClientApiOverrides } from '../client-api-core.module.js';

/** How push notifications are sent to push gateways (see PushSender). */
export interface PushSenderSettings {
  /**
   * CIDRs a push gateway may be reached at although they are private, loopback or otherwise
   * special-purpose (config push.allowed_cidrs). Empty: only public addresses.
   */
  allowedCidrs: string[];
  /** Lifetime of the push sender lease; renewed every third of it. A dead holder is replaced after at most this. */
  leaseTtlMs: number;
  /** Deadline of one POST to a gateway, connect to last byte. */
  requestTimeoutMs: number;
  /** First retry delay after a failed POST; doubled per attempt (with jitter) up to retryMaxMs. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** Attempts of one notification before it is dropped (the first one included). */
  maxAttempts: number;
  /** POSTs in flight to one gateway (scheme://host:port) at a time. */
  concurrencyPerGateway: number;
  /** Notifications waiting for one gateway; beyond, the oldest are dropped (a dead gateway must not grow memory). */
  maxQueuedPerGateway: number;
  /** When the sender starts far behind the stream (a long outage), only this many of the latest events are pushed. */
  maxCatchUpEvents: number;
}

export const DEFAULT_PUSH_SENDER_SETTINGS: Readonly<PushSenderSettings> = {
  allowedCidrs: [],
  leaseTtlMs: 30_000,
  requestTimeoutMs: 10_000,
  retryBaseMs: 1_000,
  retryMaxMs: 5 * 60_000,
  maxAttempts: 10,
  concurrencyPerGateway: 4,
  maxQueuedPerGateway: 1_000,
  maxCatchUpEvents: 1_000,
};

export const PUSH_SENDER_SETTINGS = Symbol('PUSH_SENDER_SETTINGS');

/** The settings from the homeserver config, then test overrides. */
export function pushSenderSettings(config: HomeserverConfig, overrides: Partial<PushSenderSettings> = {}): PushSenderSettings {
  return { ...DEFAULT_PUSH_SENDER_SETTINGS, allowedCidrs: [...config.push.allowedCidrs], ...overrides };
}

/** PUSH_SENDER_SETTINGS from the config and the optional test overrides (ClientApiOverrides.pushSender). */
export const pushSenderSettingsProvider: Provider = {
  provide: PUSH_SENDER_SETTINGS,
  inject: [CONFIG, { token: CLIENT_API_SETTINGS_OVERRIDES, optional: true }],
  useFactory: (config: HomeserverConfig, overrides?: ClientApiOverrides): PushSenderSettings => pushSenderSettings(config, overrides?.pushSender),
};
