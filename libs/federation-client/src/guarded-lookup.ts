import type { LookupFunction } from 'node:net';
import type { DnsResolver } from './dns-resolver.js';
import type { IpPolicy } from './ip-ranges.js';

/**
 * A dns.lookup-compatible function (for an http(s).Agent) that resolves through `resolver` and
 * keeps only the addresses `policy` allows, so the address actually connected to is the one
 * checked (a name pointing at a private address is refused too). A name with allowed addresses
 * none of: an error with code `refusedCode` and the message `describe` gives.
 */
export function guardedLookup(
  resolver: DnsResolver,
  policy: IpPolicy,
  refusedCode: string,
  describe: (hostname: string, why: string) => string = (_hostname, why) => why,
): LookupFunction {
  return (hostname, options, callback) => {
    resolver.lookup(hostname).then(
      (found) => {
        const family = options.family === 4 || options.family === 6 ? options.family : undefined;
        const candidates = found.filter((a) => family === undefined || a.family === family);
        const allowed = candidates.filter((a) => policy.isAllowed(a.address));
        if (allowed.length === 0) {
          const err: NodeJS.ErrnoException = new Error(
            candidates.length === 0 ? `${hostname} has no usable address` : describe(hostname, policy.refusal(candidates[0]!.address)!),
          );
          err.code = candidates.length === 0 ? 'ENOTFOUND' : refusedCode;
          callback(err, '', 0);
          return;
        }
        if (options.all) (callback as unknown as (e: null, a: Array<{ address: string; family: number }>) => void)(null, allowed);
        else callback(null, allowed[0]!.address, allowed[0]!.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, '', 0),
    );
  };
}
