import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { extname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { brotliCompressSync, constants as zlib, gzipSync } from 'node:zlib';

/**
 * The dashboard's page and static files, all read once when the server starts and served from memory: the
 * page (src/web/index.html), its stylesheet, the compiled browser modules (dist/web/*.js) and uPlot from its
 * npm package. Nothing is fetched from elsewhere. Files live under /assets/BUILD/ where BUILD is a hash of
 * their contents, so they are cached for good (immutable) while the page itself is revalidated on every
 * load (ETag); a new build changes every asset URL at once.
 */

/** The package root: this file is src/http/routes/dashboard.ts, or dist/http/routes/dashboard.js once built. */
const ROOT = new URL('../../../', import.meta.url);

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

const IMMUTABLE = 'public, max-age=31536000, immutable';

/** A file as served: its bytes in each encoding a client may accept, and their validator. */
interface StaticFile {
  readonly contentType: string;
  readonly identity: Buffer;
  readonly gzip: Buffer;
  readonly br: Buffer;
  readonly etag: string;
}

export interface StaticRequest {
  /** Raw header values; '' when absent. */
  readonly acceptEncoding: string;
  readonly ifNoneMatch: string;
}

export type StaticAnswer =
  | {
      readonly kind: 'file';
      readonly httpStatus: 200 | 304;
      readonly contentType: string;
      readonly body: Uint8Array;
      readonly headers: readonly (readonly [string, string])[];
    }
  | { readonly kind: 'missing'; readonly message: string };

function staticFile(name: string, bytes: Buffer): StaticFile {
  return {
    contentType: CONTENT_TYPES[extname(name)] ?? 'application/octet-stream',
    identity: bytes,
    gzip: gzipSync(bytes, { level: 9 }),
    br: brotliCompressSync(bytes, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11, [zlib.BROTLI_PARAM_SIZE_HINT]: bytes.length } }),
    etag: '"' + createHash('sha256').update(bytes).digest('base64url').slice(0, 22) + '"',
  };
}

/** Codings the client accepts, from Accept-Encoding (RFC 9110 12.5.3): a coding listed with q=0 is refused. */
function acceptedCodings(header: string): Set<string> {
  const accepted = new Set<string>();
  for (const part of header.split(',')) {
    const [coding, ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    if (coding === undefined || coding === '') continue;
    const q = params.find((p) => p.startsWith('q='));
    if (q !== undefined && Number(q.slice(2)) === 0) continue;
    accepted.add(coding);
  }
  return accepted;
}

/** Does an If-None-Match header name this ETag (or `*`)? */
function matchesEtag(ifNoneMatch: string, etag: string): boolean {
  if (ifNoneMatch === '') return false;
  return ifNoneMatch.split(',').some((tag) => {
    const t = tag.trim();
    return t === '*' || t === etag || t === 'W/' + etag;
  });
}

function answer(file: StaticFile, request: StaticRequest, extra: readonly (readonly [string, string])[]): StaticAnswer {
  const headers: (readonly [string, string])[] = [['etag', file.etag], ['vary', 'Accept-Encoding'], ...extra];
  if (matchesEtag(request.ifNoneMatch, file.etag)) {
    return { kind: 'file', httpStatus: 304, contentType: file.contentType, body: new Uint8Array(0), headers };
  }
  const accepted = acceptedCodings(request.acceptEncoding);
  let body: Buffer = file.identity;
  if (accepted.has('br')) {
    body = file.br;
    headers.push(['content-encoding', 'br']);
  } else if (accepted.has('gzip')) {
    body = file.gzip;
    headers.push(['content-encoding', 'gzip']);
  }
  return { kind: 'file', httpStatus: 200, contentType: file.contentType, body, headers };
}

/** The page's import map sends the browser modules' `import 'uplot'` to the packaged file. */
function importMap(prefix: string): string {
  return JSON.stringify({ imports: { uplot: prefix + 'uPlot.esm.js' } });
}

export class DashboardAssets {
  private constructor(
    /** The page, with and without the API-key prompt; null when the browser modules are not built. */
    private readonly pages: { readonly open: StaticFile; readonly keyed: StaticFile; readonly csp: string } | null,
    private readonly build: string,
    private readonly files: ReadonlyMap<string, StaticFile>,
    private readonly problem: string,
  ) {}

  /** Reads every file of the dashboard. A missing build is not fatal: the API serves, and `/` says what is missing. */
  static load(): DashboardAssets {
    const sources = new Map<string, Buffer>();
    const compiled = new URL('dist/web/', ROOT);
    const compiledDir = fileURLToPath(compiled);
    if (!existsSync(new URL('dashboard.js', compiled))) {
      return new DashboardAssets(null, '', new Map(), `The dashboard is not built: run npm run build:ts (no ${'dist/web/dashboard.js'})`);
    }
    for (const name of readdirSync(compiledDir).sort()) {
      if (name.endsWith('.js')) sources.set(name, readFileSync(new URL(name, compiled)));
    }
    sources.set('dashboard.css', readFileSync(new URL('src/web/dashboard.css', ROOT)));
    const requireHere = createRequire(import.meta.url);
    const uplotDir = new URL('.', pathToFileURL(requireHere.resolve('uplot/dist/uPlot.esm.js')));
    sources.set('uPlot.esm.js', readFileSync(new URL('uPlot.esm.js', uplotDir)));
    sources.set('uPlot.min.css', readFileSync(new URL('uPlot.min.css', uplotDir)));

    const hash = createHash('sha256');
    for (const [name, bytes] of sources) hash.update(name).update('\0').update(bytes).update('\0');
    const build = hash.digest('base64url').replace(/[-_]/g, '').slice(0, 12);
    const files = new Map<string, StaticFile>();
    for (const [name, bytes] of sources) files.set(name, staticFile(name, bytes));

    const prefix = `/assets/${build}/`;
    const map = importMap(prefix);
    const template = readFileSync(new URL('src/web/index.html', ROOT), 'utf8');
    // Every module is named up front, so the browser fetches them in parallel instead of import by import.
    const preloads = [...sources.keys()]
      .filter((name) => name.endsWith('.js'))
      .map((name) => `<link rel="modulepreload" href="${prefix}${name}">`)
      .join('\n');
    const page = (auth: 'on' | 'off'): StaticFile =>
      staticFile(
        'index.html',
        Buffer.from(
          template.replaceAll('%ASSETS%', prefix).replace('%IMPORT_MAP%', map).replace('%MODULE_PRELOADS%', preloads).replace('%AUTH%', auth),
        ),
      );
    const mapHash = createHash('sha256').update(map).digest('base64');
    // The only inline script is the import map; everything else comes from this server.
    const csp = [
      "default-src 'none'",
      `script-src 'self' 'sha256-${mapHash}'`,
      "style-src 'self'",
      "img-src 'self' data:",
      "connect-src 'self'",
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join('; ');
    return new DashboardAssets({ open: page('off'), keyed: page('on'), csp }, build, files, '');
  }

  /** GET /: `keyed` when the API needs a key, so the page asks for one before it asks for data. */
  page(keyed: boolean, request: StaticRequest): StaticAnswer {
    if (this.pages === null) return { kind: 'missing', message: this.problem };
    return answer(keyed ? this.pages.keyed : this.pages.open, request, [
      ['cache-control', 'no-cache'],
      ['content-security-policy', this.pages.csp],
      ['x-content-type-options', 'nosniff'],
      ['referrer-policy', 'no-referrer'],
    ]);
  }

  /** GET /assets/BUILD/FILE; another build's files are not found (the page names the current build). */
  asset(build: string, name: string, request: StaticRequest): StaticAnswer {
    const file = build === this.build ? this.files.get(name) : undefined;
    if (file === undefined) return { kind: 'missing', message: `No dashboard file ${build}/${name}` };
    return answer(file, request, [
      ['cache-control', IMMUTABLE],
      ['x-content-type-options', 'nosniff'],
    ]);
  }
}
