import uWS from 'uWebSockets.js';

export { uWS };

function glibcVersion(): string {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return report?.header?.glibcVersionRuntime ?? 'unknown';
}

/**
 * uWebSockets.js silently swaps in a slow JavaScript imitation when its binary cannot load (a Node.js
 * version it has no build for, an older glibc). Serving on that would be a different, slower product, so
 * the server refuses to start instead.
 */
export function assertNativeUws(): void {
  if (String(uWS.App).includes('[native code]')) return;
  throw new Error(
    `uWebSockets.js could not load its native binary (Node.js ${process.version}, module ABI ` +
      `${process.versions.modules}, glibc ${glibcVersion()}) and fell back to a JavaScript imitation; ` +
      'forecastd will not serve on it. Run forecastd on Node.js 20 (module ABI 115) on Linux x64 with ' +
      'glibc 2.27 or newer' +
      (process.env['UWS_USE_FALLBACK'] ? ', and unset UWS_USE_FALLBACK' : '') +
      '.',
  );
}
