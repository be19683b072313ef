// Compiles the embedded homeserver (apps/homeserver/src/main.ts and the libs it imports) into
// one ES module, dist/homeserver/main.mjs, which `npm start` runs with plain node. Run by
// prestart before every start, so the file always matches the sources (esbuild takes about a
// second); no cache to get wrong.
//
// Why not `node --import tsx` as the other apps run: tsx's loader keeps a worker thread with a
// V8 isolate of its own and the compiled sources alive for the life of the process, ~60 MB of
// resident memory out of ~300 MB idle (measured by bench/startup.bench.ts, embedded_* figures).
//
// The bundle is what tsx would run: the same esbuild transform of each file (tsconfig paths,
// experimentalDecorators, no decorator metadata), packages left to node_modules. keepNames
// because tsx does not rename anything and Nest and our logs read class names.
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
export const HOMESERVER_BUNDLE = `${root}dist/homeserver/main.mjs`;

export async function buildHomeserver() {
  const { build } = await import('esbuild');
  await build({
    absWorkingDir: root,
    entryPoints: ['apps/homeserver/src/main.ts'],
    outfile: HOMESERVER_BUNDLE,
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    tsconfig: 'tsconfig.json',
    keepNames: true,
    // Whitespace and syntax minified (names kept): V8 keeps the module's source text for lazy
    // compilation, ~1.3 MB of idle heap as written, about half of that minified.
    minifyWhitespace: true,
    minifySyntax: true,
    // A map beside the bundle: `node --enable-source-maps` shows .ts files and lines in stack
    // traces when debugging; not in the start script (it costs ~4 MB of heap idle).
    sourcemap: 'linked',
    sourcesContent: false,
    logLevel: 'warning',
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await buildHomeserver();
