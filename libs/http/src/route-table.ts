/**
 * The routes an HTTP app serves, collected from Fastify's onRoute hook, so that an unmatched
 * request can be told apart: a path no route has (404 M_UNRECOGNIZED) or a path that exists
 * for other methods (405 M_UNRECOGNIZED), as the spec asks of both.
 */
export class RouteTable {
  private readonly routes: Array<{ methods: string[]; pattern: RegExp }> = [];

  add(method: string | string[], url: string): void {
    this.routes.push({ methods: (Array.isArray(method) ? method : [method]).map((m) => m.toUpperCase()), pattern: compile(url) });
  }

  /** The methods served on this path (query string ignored). */
  methodsFor(url: string): string[] {
    const path = url.split('?')[0] ?? url;
    const methods = new Set<string>();
    for (const r of this.routes) if (r.pattern.test(path)) r.methods.forEach((m) => methods.add(m));
    return [...methods];
  }
}

/** Fastify route syntax: `:param` is one segment, `*` is the rest. */
function compile(url: string): RegExp {
  const source = url
    .split(/(:[A-Za-z0-9_]+|\*)/)
    .map((part) => {
      if (part === '*') return '.*';
      if (part.startsWith(':')) return '[^/]+';
      return part.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('');
  return new RegExp(`^${source}/?$`);
}
