/**
 * Chooses the native uWebSockets.js build for the running Node.js, loaded when a server is first made (never
 * at import, so the library loads on any Node.js), or refuses with the combinations that serve.
 *
 * uWebSockets.js is a native module built per Node.js ABI, and no one npm package covers the Node.js versions
 * forecastd supports: `@trufflesuite/uws-js-unofficial` (installed as `uWebSockets.js`) has Node.js 20 builds
 * that need glibc 2.27, `@btc-vision/uwebsockets.js` has Node.js 22 and 24 builds that need glibc 2.38.
 * Each binary is required directly, so a failure is reported as it happened: neither package's slow
 * JavaScript imitation (which the trufflesuite package swaps in silently when its binary cannot load) is
 * ever served on.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

export type UwsModule = typeof import('uWebSockets.js');

export interface UwsBuild {
  /** The name forecastd depends on it by (package.json). */
  readonly dependency: string;
  /** What users know it as, with its version. */
  readonly label: string;
  /** Its binaries' folder, relative to the folder of the package's main script. */
  readonly binaries: string;
  /** Node.js module ABI → the Node.js major it belongs to, for the builds forecastd serves on. */
  readonly nodeByAbi: Readonly<Record<string, number>>;
  readonly glibc: string;
  /**
   * The header block size limit to load it with, for a build that reads UWS_HTTP_MAX_HEADERS_SIZE when its
   * binary loads (unless the user set it).
   */
  readonly maxHeadersSize?: number;
}

const BUILDS: readonly UwsBuild[] = [
  {
    dependency: 'uWebSockets.js',
    label: '@trufflesuite/uws-js-unofficial 20.30.0',
    binaries: '../binaries',
    nodeByAbi: { '115': 20 },
    glibc: '2.27',
  },
  {
    dependency: '@btc-vision/uwebsockets.js',
    label: '@btc-vision/uwebsockets.js 20.57.0',
    binaries: '.',
    nodeByAbi: { '127': 22, '137': 24 },
    glibc: '2.38',
    // Its default, 4 KiB for a request's whole header block, would answer 431 to the 8 KiB URLs forecastd
    // answers itself and to headers (tokens, cookies) that 20.30 and Node's own http (16 KiB) accept.
    maxHeadersSize: 64 * 1024,
  },
];

/** The Node.js/glibc pairs forecastd serves on, as the refusal and the README state them. */
export const SERVING_COMBINATIONS =
  'Linux x64 with Node.js 20 and glibc 2.27 or newer, or Node.js 22 or 24 and glibc 2.38 or newer ' +
  '(e.g. Debian 13, Ubuntu 24.04, RHEL 10)';

/** The uWebSockets.js build that serves on a Node.js of this module ABI on this platform, if any. */
export function uwsBuildFor(platform: string, arch: string, abi: string): UwsBuild | undefined {
  if (platform !== 'linux' || arch !== 'x64') return undefined;
  return BUILDS.find((build) => build.nodeByAbi[abi] !== undefined);
}

function glibcVersion(): string {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return report?.header?.glibcVersionRuntime ?? 'unknown';
}

function fallbackRequested(): boolean {
  return ['true', 'True', 'TRUE', '1'].includes(process.env['UWS_USE_FALLBACK'] ?? '');
}

const require = createRequire(import.meta.url);

/** Where `build` keeps its binary for this platform and module ABI (which may be missing). */
export function uwsBinary(build: UwsBuild, platform: string, arch: string, abi: string): string {
  return path.resolve(path.dirname(require.resolve(build.dependency)), build.binaries, `uws_${platform}_${arch}_${abi}.node`);
}

function loadBuild(build: UwsBuild): UwsModule {
  const binary = uwsBinary(build, process.platform, process.arch, process.versions.modules);
  if (!existsSync(binary)) throw new Error(`${build.label} has no ${path.basename(binary)}`);
  const setHeadersSize = build.maxHeadersSize !== undefined && process.env['UWS_HTTP_MAX_HEADERS_SIZE'] === undefined;
  if (setHeadersSize) process.env['UWS_HTTP_MAX_HEADERS_SIZE'] = String(build.maxHeadersSize);
  try {
    return require(binary) as UwsModule;
  } finally {
    if (setHeadersSize) delete process.env['UWS_HTTP_MAX_HEADERS_SIZE'];
  }
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] as string;
}

/**
 * The native uWebSockets.js the server runs on, set by assertNativeUws(). Read it only after that call
 * returned (HttpServer's constructor makes it first).
 */
export let uWS: UwsModule;

/**
 * Loads the uWebSockets.js build for this Node.js into `uWS`, or throws an error that says why none serves
 * here and which Node.js/glibc pairs do. Later calls return at once.
 */
export function assertNativeUws(): void {
  if (uWS !== undefined) return;
  const here =
    `Node.js ${process.version}, module ABI ${process.versions.modules}, ${process.platform}-${process.arch}, ` +
    `glibc ${glibcVersion()}`;
  if (fallbackRequested()) {
    throw new Error(
      `UWS_USE_FALLBACK asks uWebSockets.js for its slow JavaScript imitation, which forecastd will not serve on ` +
        `(${here}); unset UWS_USE_FALLBACK. forecastd serves on ${SERVING_COMBINATIONS}.`,
    );
  }
  const build = uwsBuildFor(process.platform, process.arch, process.versions.modules);
  if (build === undefined) {
    throw new Error(
      `uWebSockets.js has no native build for this Node.js (${here}); forecastd serves on ${SERVING_COMBINATIONS}.`,
    );
  }
  let loaded: UwsModule;
  try {
    loaded = loadBuild(build);
  } catch (error) {
    throw new Error(
      `uWebSockets.js could not load its native binary (${here}): ${build.label} needs glibc ${build.glibc} or ` +
        `newer (${firstLine(error)}); forecastd serves on ${SERVING_COMBINATIONS}.`,
    );
  }
  if (!String(loaded.App).includes('[native code]')) {
    throw new Error(`${build.label} loaded something other than its native binary (${here}); forecastd will not serve on it.`);
  }
  uWS = loaded;
}
