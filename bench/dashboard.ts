/**
 * The dashboard's weight and load time on loopback: headless Chromium (Debian's chromium, playwright-core)
 * opens the bundled example's dashboard, served by forecastd in a separate process, and records every
 * response's bytes on the wire (Chrome DevTools Protocol, encodedDataLength: headers and compressed body)
 * and the times from navigation start to the load event and to the dashboard being drawn (the models table
 * filled and the chart's canvas present). Cold loads use a fresh browser context each (empty cache); warm
 * loads reload in the same context (immutable assets from the cache, the page revalidated with a 304).
 *
 * Usage: npm run build && npx tsx bench/dashboard.ts [--runs N]
 * Writes bench/results/dashboard-DATE.json and .md.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';

const REPO = new URL('..', import.meta.url).pathname;
const CHROMIUM = process.env.FORECASTD_CHROMIUM ?? '/usr/bin/chromium';
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 20;
const PORT = 18000 + (process.pid % 1000);

interface Load {
  /** Bytes on the wire, by kind. */
  readonly staticBytes: number;
  readonly apiBytes: number;
  readonly requests: number;
  readonly loadEventMs: number;
  readonly drawnMs: number;
}

async function startForecastd(): Promise<() => void> {
  const child = spawn(process.execPath, ['dist/cli.js', 'examples/co2', '--http', `127.0.0.1:${PORT}`, '--no-watch'], {
    cwd: REPO,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (let i = 0; i < 200; i++) {
    const ok = await fetch(`http://127.0.0.1:${PORT}/v1/ready`).then((r) => r.status === 200, () => false);
    if (ok) return () => child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error('forecastd did not become ready');
}

async function load(context: BrowserContext, reload: boolean): Promise<Load> {
  const page = context.pages()[0] ?? (await context.newPage());
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const urls = new Map<string, string>();
  let staticBytes = 0;
  let apiBytes = 0;
  let requests = 0;
  cdp.on('Network.requestWillBeSent', (e) => urls.set(e.requestId, new URL(e.request.url).pathname));
  cdp.on('Network.loadingFinished', (e) => {
    const path = urls.get(e.requestId) ?? '';
    requests++;
    if (path === '/' || path.startsWith('/assets/')) staticBytes += e.encodedDataLength;
    else apiBytes += e.encodedDataLength;
  });
  if (reload) await page.reload();
  else await page.goto(`http://127.0.0.1:${PORT}/`);
  await page.locator('#models tbody tr').first().waitFor();
  await page.locator('.chart-card canvas').waitFor();
  const drawnMs = await page.evaluate(() => performance.now());
  await page.waitForLoadState('load');
  const loadEventMs = await page.evaluate(() => (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).loadEventEnd);
  // Let the first poll's API calls finish so their bytes are counted.
  await page.waitForLoadState('networkidle');
  await cdp.detach();
  return { staticBytes, apiBytes, requests, loadEventMs, drawnMs };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function summary(loads: readonly Load[]) {
  const pick = (f: (l: Load) => number) => ({ median: median(loads.map(f)), min: Math.min(...loads.map(f)), max: Math.max(...loads.map(f)) });
  return {
    staticBytes: pick((l) => l.staticBytes),
    apiBytes: pick((l) => l.apiBytes),
    requests: pick((l) => l.requests),
    loadEventMs: pick((l) => l.loadEventMs),
    drawnMs: pick((l) => l.drawnMs),
  };
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0]!;
  const stop = await startForecastd();
  let browser: Browser | null = null;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    const version = browser.version();
    const cold: Load[] = [];
    const warm: Load[] = [];
    // One unmeasured load first, so the server's first-request costs are not in the numbers.
    const first = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await load(first, false);
    await first.close();
    for (let i = 0; i < RUNS; i++) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      cold.push(await load(context, false));
      warm.push(await load(context, true));
      await context.close();
    }
    const result = {
      date: new Date().toISOString(),
      runs: RUNS,
      machine: `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, ${os.platform()} ${os.release()}`,
      node: process.version,
      chromium: version,
      loadAverage: { start: loadBefore, end: os.loadavg()[0]! },
      cold: summary(cold),
      warm: summary(warm),
    };
    const kb = (b: number) => (b / 1024).toFixed(1);
    const ms = (v: number) => v.toFixed(0);
    const row = (name: string, s: ReturnType<typeof summary>) =>
      `| ${name} | ${kb(s.staticBytes.median)} KB | ${kb(s.apiBytes.median)} KB | ${s.requests.median} | ${ms(s.loadEventMs.median)} ms (${ms(s.loadEventMs.min)}–${ms(s.loadEventMs.max)}) | ${ms(s.drawnMs.median)} ms (${ms(s.drawnMs.min)}–${ms(s.drawnMs.max)}) |`;
    const md = [
      `# Dashboard load, ${result.date.slice(0, 10)}`,
      '',
      `\`npx tsx bench/dashboard.ts --runs ${RUNS}\`: the bundled example's dashboard at 1280×800 over loopback, ${RUNS} cold and ${RUNS} warm loads, medians (min–max).`,
      `${result.machine}; Node ${result.node}; Chromium ${version}; forecastd and the browser share the machine;`,
      `1-minute load average ${result.loadAverage.start.toFixed(1)} at the start and ${result.loadAverage.end.toFixed(1)} at the end.`,
      '',
      '| load | page + assets on the wire | API data on the wire | requests | load event | dashboard drawn |',
      '| --- | ---: | ---: | ---: | ---: | ---: |',
      row('cold (empty cache)', result.cold),
      row('warm (reload)', result.warm),
      '',
    ].join('\n');
    const dir = join(REPO, 'bench/results');
    mkdirSync(dir, { recursive: true });
    const stem = `dashboard-${result.date.slice(0, 10)}`;
    writeFileSync(join(dir, `${stem}.json`), JSON.stringify(result, null, 2) + '\n');
    writeFileSync(join(dir, `${stem}.md`), md);
    console.log(md);
  } finally {
    await browser?.close();
    stop();
  }
}

await main();
