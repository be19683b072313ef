/**
 * OpenGraph data of an HTML page, for URL previews: the `og:*` (and `article:*`, `profile:*`)
 * meta tags, `twitter:*` ones where OpenGraph says nothing, then the fallbacks Synapse uses: the
 * <title> (or first heading) for og:title, a meta description for og:description, a microdata
 * image, the largest <img> or the icon for og:image.
 *
 * No DOM: a bounded tokenizer over the start of the document (MAX_PARSED_CHARS), which is where
 * a page's metadata is. It never throws: markup it cannot read is skipped.
 */

/** Characters of the page looked at: the head of any real page fits many times over. */
const MAX_PARSED_CHARS = 512 * 1024;
/** More meta tags of one prefix than this: the page is abusing them, ignore them (as Synapse). */
const MAX_TAGS_PER_PREFIX = 50;
/** og:description is cut to this many characters, at a word, with an ellipsis (as Synapse). */
const MAX_DESCRIPTION = 500;

/** Twitter card properties that have no OpenGraph counterpart. */
const TWITTER_ONLY = new Set(['twitter:card', 'twitter:creator', 'twitter:site']);

interface Tag {
  name: string;
  attributes: Map<string, string>;
  /** Where the tag ends in the text (to read an element's text after it). */
  end: number;
}

/** The page's OpenGraph answer: string values only, numbers are the caller's business. */
export function parseOpenGraph(html: string): Record<string, string> {
  const text = stripInvisible(html.length > MAX_PARSED_CHARS ? html.slice(0, MAX_PARSED_CHARS) : html);
  const tags = [...tokenize(text)];
  const metas = tags.filter((t) => t.name === 'meta');

  const og: Record<string, string> = {
    ...metaTags(metas, 'property', 'og'),
    ...metaTags(metas, 'property', 'article'),
    ...metaTags(metas, 'property', 'profile'),
  };
  for (const [key, value] of Object.entries(metaTags(metas, 'name', 'twitter'))) {
    if (TWITTER_ONLY.has(key)) continue;
    const mapped = `og${key.slice('twitter'.length)}`;
    if (!(mapped in og)) og[mapped] = value;
  }

  if (!og['og:title']) {
    const title = elementText(text, tags, ['title']) ?? elementText(text, tags, ['h1', 'h2', 'h3']);
    if (title) og['og:title'] = title;
    else delete og['og:title'];
  }

  if (!og['og:image']) {
    const image = imageOf(tags);
    if (image) og['og:image'] = image;
    else delete og['og:image'];
  }

  const description = og['og:description']
    ?? metas.find((m) => /description/i.test(m.attributes.get('name') ?? '') && nonBlank(m.attributes.get('content')))?.attributes.get('content');
  if (description && nonBlank(description)) og['og:description'] = summarize(description);
  else delete og['og:description'];

  return og;
}

/**
 * The text of a page's bytes: the charset of the Content-Type header, else of a <meta charset>
 * or http-equiv in the first kilobytes, else UTF-8. An unknown charset reads as UTF-8.
 */
export function decodeHtml(body: Uint8Array, contentType: string | undefined): string {
  const declared = charsetOf(contentType) ?? sniffCharset(body);
  if (declared) {
    try {
      return new TextDecoder(declared).decode(body);
    } catch {
      // An unknown label: fall through to UTF-8.
    }
  }
  return new TextDecoder('utf-8').decode(body);
}

function charsetOf(contentType: string | undefined): string | undefined {
  const m = contentType ? /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(contentType) : null;
  return m?.[1];
}

function sniffCharset(body: Uint8Array): string | undefined {
  // ASCII-compatible charsets agree on the bytes of a <meta> tag.
  const head = Buffer.from(body.buffer, body.byteOffset, Math.min(body.byteLength, 4096)).toString('latin1');
  const m = /<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)/i.exec(head);
  return m?.[1];
}

/** Comments, scripts, styles and templates hold no metadata but may hold text that looks like tags. */
function stripInvisible(html: string): string {
  return html
    .replace(/<!--[\s\S]*?(?:-->|$)/g, ' ')
    .replace(/<(script|style|template|noscript)\b[^>]*>[\s\S]*?(?:<\/\1\s*>|$)/gi, ' ');
}

const TAG = /<([a-zA-Z][a-zA-Z0-9:-]*)((?:\s+[^\s"'>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*)\s*\/?>/g;
const ATTRIBUTE = /([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;

function* tokenize(text: string): Generator<Tag> {
  for (const m of text.matchAll(TAG)) {
    const attributes = new Map<string, string>();
    for (const a of (m[2] ?? '').matchAll(ATTRIBUTE)) {
      const key = a[1]!.toLowerCase();
      // The first of a repeated attribute wins, as in browsers.
      if (!attributes.has(key)) attributes.set(key, decodeEntities(a[2] ?? a[3] ?? a[4] ?? ''));
    }
    yield { name: m[1]!.toLowerCase(), attributes, end: m.index! + m[0].length };
  }
}

/** `<meta {attribute}="{prefix}:..." content="...">` tags (non-blank content); later ones win, as Synapse. */
function metaTags(metas: Tag[], attribute: string, prefix: string): Record<string, string> {
  const found: Record<string, string> = {};
  let count = 0;
  for (const meta of metas) {
    const key = meta.attributes.get(attribute);
    const content = meta.attributes.get('content');
    if (!key || !key.toLowerCase().startsWith(`${prefix}:`) || !nonBlank(content)) continue;
    if (++count > MAX_TAGS_PER_PREFIX) return {};
    found[key] = content!;
  }
  return found;
}

/** The text of the first non-empty element among `names` (tags inside it dropped), or undefined. */
function elementText(text: string, tags: Tag[], names: string[]): string | undefined {
  let tried = 0;
  for (const tag of tags) {
    if (!names.includes(tag.name)) continue;
    // Each try reads on to the closing tag: a page of empty headings must not cost more.
    if (++tried > 20) return undefined;
    const close = text.slice(tag.end).search(new RegExp(`</${tag.name}\\s*>`, 'i'));
    if (close < 0) continue;
    const inner = decodeEntities(text.slice(tag.end, tag.end + close).replace(/<[^>]*>/g, ' ')).replace(/\s+/g, ' ').trim();
    if (inner !== '') return inner;
  }
  return undefined;
}

/** A microdata image, else the largest <img> over 10x10, else the first <img>, else the icon. */
function imageOf(tags: Tag[]): string | undefined {
  const microdata = tags.find((t) => t.name === 'meta' && /image/i.test(t.attributes.get('itemprop') ?? '') && nonBlank(t.attributes.get('content')));
  if (microdata) return microdata.attributes.get('content');
  const images = tags.filter((t) => t.name === 'img' && nonBlank(t.attributes.get('src')));
  const sized = images
    .map((t) => ({ src: t.attributes.get('src')!, area: size(t, 'width') * size(t, 'height'), small: size(t, 'width') <= 10 || size(t, 'height') <= 10 }))
    .filter((i) => !i.small)
    .sort((a, b) => b.area - a.area);
  if (sized.length > 0) return sized[0]!.src;
  if (images.length > 0) return images[0]!.attributes.get('src');
  const icon = tags.find((t) => t.name === 'link' && (t.attributes.get('rel') ?? '').toLowerCase().split(/\s+/).includes('icon') && nonBlank(t.attributes.get('href')));
  return icon?.attributes.get('href');
}

function size(tag: Tag, attribute: string): number {
  const n = Number.parseFloat(tag.attributes.get(attribute) ?? '');
  return Number.isFinite(n) ? n : 0;
}

/** Whitespace collapsed; beyond MAX_DESCRIPTION cut at a word with an ellipsis. */
function summarize(description: string): string {
  const flat = description.replace(/[\t ]+/g, ' ').replace(/\s*[\r\n]+\s*/g, '\n\n').trim();
  if (flat.length <= MAX_DESCRIPTION) return flat;
  const cut = flat.slice(0, MAX_DESCRIPTION);
  const atWord = cut.replace(/\s+\S*$/, '');
  return `${(atWord.length >= MAX_DESCRIPTION / 2 ? atWord : cut).trimEnd()}…`;
}

function nonBlank(value: string | undefined): boolean {
  return value !== undefined && value.trim() !== '';
}

/** The named entities titles and descriptions commonly use; others stay as written. */
const NAMED_ENTITIES: Record<string, string> = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0', copy: '©', reg: '®', trade: '™',
  ndash: '–', mdash: '—', hellip: '…', lsquo: '‘', rsquo: '’', ldquo: '“', rdquo: '”', laquo: '«', raquo: '»',
  bull: '•', middot: '·', euro: '€', pound: '£', deg: '°', times: '×',
  eacute: 'é', egrave: 'è', ecirc: 'ê', aacute: 'á', agrave: 'à', acirc: 'â', auml: 'ä', ouml: 'ö', uuml: 'ü',
  oacute: 'ó', iacute: 'í', uacute: 'ú', ntilde: 'ñ', ccedil: 'ç', szlig: 'ß',
  Eacute: 'É', Auml: 'Ä', Ouml: 'Ö', Uuml: 'Ü',
};

function decodeEntities(text: string): string {
  return text.replace(/&(#[xX][0-9a-fA-F]{1,6}|#\d{1,7}|[a-zA-Z]{2,8});/g, (whole, entity: string) => {
    if (entity.startsWith('#')) {
      const code = entity[1] === 'x' || entity[1] === 'X' ? Number.parseInt(entity.slice(2), 16) : Number.parseInt(entity.slice(1), 10);
      return code > 0 && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff) ? String.fromCodePoint(code) : '\ufffd';
    }
    return NAMED_ENTITIES[entity] ?? NAMED_ENTITIES[entity.toLowerCase()] ?? whole;
  });
}
