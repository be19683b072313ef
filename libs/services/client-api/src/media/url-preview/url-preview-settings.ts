import type { Provider } from '@nestjs/common';
import type { HomeserverConfig } from '@tessera/config';
import { CONFIG } from '@tessera/http';
import { CLIENT_API_SETTINGS_OVERRIDES, type ClientApiOverrides } from '../../client-api-core.module.js';
import type { UrlBlacklistEntry } from './url-blacklist.js';

/** How URL previews are made (see UrlPreviewService). */
export interface UrlPreviewSettings {
  /** false (default, as Synapse's url_preview_enabled): the endpoints answer 404 M_UNRECOGNIZED. */
  enabled: boolean;
  /** CIDRs that may be fetched from although special-purpose (url_preview_ip_range_whitelist). Empty: public addresses only. */
  allowedCidrs: string[];
  /** CIDRs refused although public (url_preview_ip_range_blacklist), on top of the special-purpose ones; allowedCidrs win. */
  blockedCidrs: string[];
  /** URLs not previewed (url_preview_url_blacklist; see url-blacklist.ts). */
  urlBlacklist: UrlBlacklistEntry[];
  /** Largest page or image read, in bytes (max_spider_size). */
  maxSize: number;
  /** Deadline of one fetch, redirects included, connect to last byte. */
  timeoutMs: number;
  /** Redirects followed before giving up. */
  maxRedirects: number;
  /** How long a preview is served from the database before the URL is fetched again (Synapse: one hour). */
  cacheMs: number;
  /** How often previews past their expiry are deleted (Synapse sweeps every 10 s); 0: only when a new preview is stored. */
  cleanupIntervalMs: number;
}

export const DEFAULT_URL_PREVIEW_SETTINGS: Readonly<UrlPreviewSettings> = {
  enabled: false,
  allowedCidrs: [],
  blockedCidrs: [],
  urlBlacklist: [],
  maxSize: 10 * 1024 * 1024,
  timeoutMs: 30_000,
  maxRedirects: 10,
  cacheMs: 60 * 60 * 1000,
  cleanupIntervalMs: 60_000,
};

export const URL_PREVIEW_SETTINGS = Symbol('URL_PREVIEW_SETTINGS');

/** The settings from the homeserver config, then test overrides. */
export function urlPreviewSettings(config: HomeserverConfig, overrides: Partial<UrlPreviewSettings> = {}): UrlPreviewSettings {
  const { enabled, allowedCidrs, blockedCidrs, urlBlacklist, maxSize } = config.urlPreview;
  return {
    ...DEFAULT_URL_PREVIEW_SETTINGS,
    enabled,
    allowedCidrs: [...allowedCidrs],
    blockedCidrs: [...blockedCidrs],
    urlBlacklist: urlBlacklist.map((entry) => ({ ...entry })),
    maxSize,
    ...overrides,
  };
}

/** URL_PREVIEW_SETTINGS from the config and the optional test overrides (ClientApiOverrides.urlPreview). */
export const urlPreviewSettingsProvider: Provider = {
  provide: URL_PREVIEW_SETTINGS,
  inject: [CONFIG, { token: CLIENT_API_SETTINGS_OVERRIDES, optional: true }],
  useFactory: (config: HomeserverConfig, overrides?: ClientApiOverrides): UrlPreviewSettings => urlPreviewSettings(config, overrides?.urlPreview),
};
