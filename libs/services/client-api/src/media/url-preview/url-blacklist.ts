/**
 * url_preview_url_blacklist, as Synapse reads it: each entry maps URL components to patterns,
 * and a URL matching every component of one entry is not previewed. A pattern is a regular
 * expression when it starts with "^" (matched from the start of the component, as Python's
 * re.match), else a shell glob (fnmatch: `*`, `?`, `[seq]`, `[!seq]`, the whole component,
 * case-sensitive). The components are those of Python's urlsplit on the URL as given (plus
 * urlparse's `params`): a component the URL lacks (username, password, hostname, port when
 * absent) matches no pattern; the others are '' when empty, which `*` matches.
 *
 * A usability feature, not a security one (Synapse's words): a name can point anywhere, so
 * addresses are what url_preview_ip_range_blacklist is for.
 */

/** The components an entry may name. */
export const URL_COMPONENTS = ['scheme', 'netloc', 'path', 'params', 'query', 'fragment', 'username', 'password', 'hostname', 'port'] as const;
export type UrlComponent = (typeof URL_COMPONENTS)[number];
export type UrlBlacklistEntry = Partial<Record<UrlComponent, string>>;

type Components = Record<UrlComponent, string | undefined>;

/** RFC 3986 appendix B: scheme, authority, path, query, fragment of any URI reference. */
const URI_PARTS = /^(?:([A-Za-z][A-Za-z0-9+.-]*):)?(?:\/\/([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$/s;

/** The components of `url` as urlsplit names them (values as Synapse compares them: strings, port as a number's text). */
export function urlComponents(url: string): Components {
  const [, scheme = '', netloc = '', fullPath = '', query = '', fragment = ''] = URI_PARTS.exec(url) ?? [];
  const at = netloc.lastIndexOf('@');
  const userinfo = at === -1 ? undefined : netloc.slice(0, at);
  const hostinfo = at === -1 ? netloc : netloc.slice(at + 1);
  const colon = userinfo?.indexOf(':') ?? -1;
  let hostname: string;
  let portText: string;
  if (hostinfo.startsWith('[')) {
    const close = hostinfo.indexOf(']');
    hostname = close === -1 ? hostinfo.slice(1) : hostinfo.slice(1, close);
    const rest = close === -1 ? '' : hostinfo.slice(close + 1);
    portText = rest.startsWith(':') ? rest.slice(1) : '';
  } else {
    const c = hostinfo.indexOf(':');
    hostname = c === -1 ? hostinfo : hostinfo.slice(0, c);
    portText = c === -1 ? '' : hostinfo.slice(c + 1);
  }
  // urlparse's params: what follows ";" in the last segment of the path.
  const lastSlash = fullPath.lastIndexOf('/');
  const semicolon = fullPath.indexOf(';', lastSlash === -1 ? 0 : lastSlash);
  return {
    scheme: scheme.toLowerCase(),
    netloc,
    path: fullPath,
    params: semicolon === -1 ? '' : fullPath.slice(semicolon + 1),
    query,
    fragment,
    username: userinfo === undefined ? undefined : colon === -1 ? userinfo : userinfo.slice(0, colon),
    password: userinfo === undefined || colon === -1 ? undefined : userinfo.slice(colon + 1),
    hostname: hostname === '' ? undefined : hostname.toLowerCase(),
    port: /^\d{1,5}$/.test(portText) && Number(portText) <= 65535 ? String(Number(portText)) : undefined,
  };
}

const compiled = new Map<string, RegExp>();

/** A pattern as a RegExp: "^..." as given (throws SyntaxError when invalid), else the glob translated. */
export function patternRegExp(pattern: string): RegExp {
  let re = compiled.get(pattern);
  if (!re) {
    re = pattern.startsWith('^') ? new RegExp(pattern) : globRegExp(pattern);
    if (compiled.size < 1000) compiled.set(pattern, re);
  }
  return re;
}

/** fnmatch's translation: the whole string, `*` any run, `?` one character, `[...]` a set (`[!...]` its complement). */
function globRegExp(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') out += '[\\s\\S]*';
    else if (c === '?') out += '[\\s\\S]';
    else if (c === '[') {
      let j = i + 1;
      if (glob[j] === '!') j++;
      if (glob[j] === ']') j++;
      while (j < glob.length && glob[j] !== ']') j++;
      if (j >= glob.length) {
        out += '\\[';
        continue;
      }
      let set = glob.slice(i + 1, j);
      const negated = set.startsWith('!');
      if (negated) set = set.slice(1);
      out += `[${negated ? '^' : ''}${set.replace(/[\\\]]/g, '\\$&').replace(/^\^/, '\\^')}]`;
      i = j;
    } else out += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^(?:${out})$`);
}

/** The first entry `url` matches, if any. */
export function urlBlacklistEntryMatching(entries: readonly UrlBlacklistEntry[], url: string): UrlBlacklistEntry | undefined {
  if (entries.length === 0) return undefined;
  const components = urlComponents(url);
  return entries.find((entry) =>
    Object.entries(entry).every(([component, pattern]) => {
      const value = components[component as UrlComponent];
      return value !== undefined && pattern !== undefined && patternRegExp(pattern).test(value);
    }),
  );
}
