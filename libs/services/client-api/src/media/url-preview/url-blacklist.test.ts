import { describe, expect, it } from 'vitest';
import { urlBlacklistEntryMatching, urlComponents } from './url-blacklist.js';

describe('url_preview_url_blacklist matching (Synapse semantics)', () => {
  it('splits a URL as urlsplit does (plus urlparse params)', () => {
    expect(urlComponents('HTTPS://User:Pw@WWW.Example.com:08448/a/b;x=1?q=1&r#frag')).toEqual({
      scheme: 'https',
      netloc: 'User:Pw@WWW.Example.com:08448',
      path: '/a/b;x=1',
      params: 'x=1',
      query: 'q=1&r',
      fragment: 'frag',
      username: 'User',
      password: 'Pw',
      hostname: 'www.example.com',
      port: '8448',
    });
    expect(urlComponents('http://[::1]:80/')).toMatchObject({ netloc: '[::1]:80', hostname: '::1', port: '80', username: undefined, password: undefined });
    expect(urlComponents('http://example.com')).toMatchObject({ path: '', query: '', fragment: '', params: '', port: undefined });
  });

  it('blocks a URL matching every component of one entry: globs on the whole value, "^" regexes from the start', () => {
    const entries = [{ netloc: 'google.com' }, { netloc: '*.google.com' }, { netloc: 'www.acme.com', path: '/foo' }, { netloc: '^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$' }, { username: '*' }];
    const blocked = (url: string) => urlBlacklistEntryMatching(entries, url) !== undefined;
    expect(blocked('https://google.com/search')).toBe(true);
    expect(blocked('https://maps.google.com/')).toBe(true);
    expect(blocked('https://notgoogle.com/')).toBe(false);
    expect(blocked('https://google.com.evil/')).toBe(false);
    expect(blocked('http://www.acme.com/foo')).toBe(true);
    expect(blocked('http://www.acme.com/foo/bar')).toBe(false);
    expect(blocked('http://www.acme.com/bar')).toBe(false);
    expect(blocked('http://10.1.2.3/')).toBe(true);
    expect(blocked('http://10.1.2.3:80/')).toBe(false);
    // An absent username matches no pattern, not even "*"; an empty one does.
    expect(blocked('http://example.org/')).toBe(false);
    expect(blocked('http://@example.org/')).toBe(true);
    expect(blocked('http://bob@example.org/')).toBe(true);
  });

  it('reads glob sets and case as fnmatch on POSIX', () => {
    const blocked = (pattern: string, path: string) => urlBlacklistEntryMatching([{ path: pattern }], `http://example.org${path}`) !== undefined;
    expect(blocked('/img?.png', '/img1.png')).toBe(true);
    expect(blocked('/img?.png', '/img12.png')).toBe(false);
    expect(blocked('/img[0-3].png', '/img2.png')).toBe(true);
    expect(blocked('/img[!0-3].png', '/img2.png')).toBe(false);
    expect(blocked('/img[!0-3].png', '/img9.png')).toBe(true);
    expect(blocked('/a[]b].png', '/a].png')).toBe(true);
    expect(blocked('/odd[', '/odd[')).toBe(true);
    expect(blocked('/a.b', '/axb')).toBe(false);
    expect(blocked('/Case', '/case')).toBe(false);
    expect(blocked('^/adm', '/admin/x')).toBe(true);
    expect(blocked('^/adm$', '/admin')).toBe(false);
  });
});
