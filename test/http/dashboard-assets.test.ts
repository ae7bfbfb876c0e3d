import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { DashboardAssets, type StaticAnswer } from '../../src/http/routes/dashboard.js';
import { startServer } from '../../src/server/start.js';
import { PodDir, writeLinearPod } from '../server/fixtures.js';

/**
 * The dashboard's gzip and Brotli copies are made off the JavaScript thread once the server has loaded, not while
 * it starts (best compression of uPlot alone takes about half a second of CPU, which a start must not wait for).
 * Until then each file is served as it is; afterwards in the encoding the client prefers, with the same bytes.
 */
function fileOf(answer: StaticAnswer): Extract<StaticAnswer, { kind: 'file' }> {
  if (answer.kind !== 'file') throw new Error(`not a file: ${answer.message}`);
  return answer;
}

function encodingOf(answer: StaticAnswer): string | undefined {
  return fileOf(answer).headers.find(([name]) => name === 'content-encoding')?.[1];
}

describe('dashboard files', () => {
  it('are served as they are until compress() made their gzip and Brotli copies, then those, with the same bytes', async () => {
    const assets = DashboardAssets.load();
    const page = fileOf(assets.page(false, { acceptEncoding: '', ifNoneMatch: '' }));
    const html = Buffer.from(page.body).toString('utf8');
    const build = /\/assets\/([A-Za-z0-9]+)\/uPlot\.esm\.js/.exec(html)?.[1];
    expect(build).toBeDefined();
    const ask = (acceptEncoding: string): StaticAnswer => assets.asset(build as string, 'uPlot.esm.js', { acceptEncoding, ifNoneMatch: '' });
    const identity = Buffer.from(fileOf(ask('')).body);
    expect(identity.toString('utf8')).toContain('uPlot');

    // Before compress(): nothing compressed yet, whatever the client accepts.
    expect(encodingOf(ask('br, gzip'))).toBeUndefined();
    expect(Buffer.from(fileOf(ask('br, gzip')).body).equals(identity)).toBe(true);
    expect(encodingOf(assets.page(false, { acceptEncoding: 'gzip', ifNoneMatch: '' }))).toBeUndefined();

    const compressing = assets.compress();
    expect(assets.compress()).toBe(compressing);
    await compressing;

    const br = fileOf(ask('gzip, br'));
    expect(encodingOf(br)).toBe('br');
    expect(brotliDecompressSync(br.body).equals(identity)).toBe(true);
    expect(br.body.length).toBeLessThan(identity.length / 2);
    const gz = fileOf(ask('gzip'));
    expect(encodingOf(gz)).toBe('gzip');
    expect(gunzipSync(gz.body).equals(identity)).toBe(true);
    // A coding refused with q=0 is not used.
    expect(encodingOf(ask('br;q=0, gzip'))).toBe('gzip');
    const compressedPage = fileOf(assets.page(false, { acceptEncoding: 'br', ifNoneMatch: '' }));
    expect(brotliDecompressSync(compressedPage.body).toString('utf8')).toBe(html);

    // Each coding's bytes have their own ETag (a cache never takes one coding's bytes for another's); any of
    // them revalidates, since they carry the same content.
    const tagOf = (answer: StaticAnswer): string | undefined => fileOf(answer).headers.find(([name]) => name === 'etag')?.[1];
    const plainTag = tagOf(ask(''));
    const brTag = tagOf(br);
    const gzTag = tagOf(gz);
    expect(new Set([plainTag, brTag, gzTag]).size).toBe(3);
    for (const held of [plainTag, brTag, gzTag]) {
      const again = fileOf(assets.asset(build as string, 'uPlot.esm.js', { acceptEncoding: 'br', ifNoneMatch: held as string }));
      expect(again.httpStatus).toBe(304);
      expect(again.body.length).toBe(0);
      expect(tagOf(again)).toBe(brTag);
    }
    expect(fileOf(assets.asset(build as string, 'uPlot.esm.js', { acceptEncoding: 'br', ifNoneMatch: '"other"' })).httpStatus).toBe(200);
  });

  it('a server compresses them after it has loaded, and serves them compressed from then on', async () => {
    const pod = new PodDir('forecastd-dashboard-assets-');
    writeLinearPod(pod, 'lin');
    const server = await startServer({ spicepod: pod.dir, host: '127.0.0.1', port: 0 });
    try {
      await server.loaded();
      const html = await (await fetch(server.url + '/', { headers: { 'accept-encoding': 'identity' } })).text();
      const path = /\/assets\/[A-Za-z0-9]+\/uPlot\.esm\.js/.exec(html)?.[0];
      expect(path).toBeDefined();
      const plain = await fetch(server.url + (path as string), { headers: { 'accept-encoding': 'identity' } });
      expect(plain.status).toBe(200);
      const text = await plain.text();
      // fetch() decodes the body; the header says what was sent. The copies come shortly after loading.
      let encoding: string | null = null;
      let decoded = '';
      for (let i = 0; i < 400 && encoding !== 'br'; i++) {
        const response = await fetch(server.url + (path as string), { headers: { 'accept-encoding': 'br' } });
        expect(response.status).toBe(200);
        encoding = response.headers.get('content-encoding');
        decoded = await response.text();
        if (encoding !== 'br') await new Promise((resolve) => setTimeout(resolve, 25));
      }
      expect(encoding).toBe('br');
      expect(decoded).toBe(text);
    } finally {
      await server.close();
      pod.remove();
    }
  });
});
