import { Controller, Get } from '@nestjs/common';

/**
 * Spec versions this server advertises, listed as Synapse does: every release it serves
 * compatibly, oldest first. Clients pick the newest they know.
 */
export const SUPPORTED_SPEC_VERSIONS: readonly string[] = [
  'r0.0.1',
  'r0.1.0',
  'r0.2.0',
  'r0.3.0',
  'r0.4.0',
  'r0.5.0',
  'r0.6.0',
  'r0.6.1',
  ...Array.from({ length: 16 }, (_, i) => `v1.${i + 1}`),
];

/**
 * Unstable features served: simplified sliding sync (MSC4186), which Element X requires
 * before it will use a server.
 */
export const UNSTABLE_FEATURES: Readonly<Record<string, boolean>> = { 'org.matrix.simplified_msc3575': true };

/** GET /_matrix/client/versions: no authentication (spec: "Server discovery" / versions). */
@Controller('_matrix/client/versions')
export class VersionsController {
  @Get()
  versions() {
    return { versions: SUPPORTED_SPEC_VERSIONS, unstable_features: UNSTABLE_FEATURES };
  }
}
