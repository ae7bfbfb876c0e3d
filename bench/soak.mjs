#!/usr/bin/env node
// Soak: forecastd under minutes of mixed traffic (good predictions, hostile requests, clients that vanish,
// slow clients) while its resident memory is sampled. Memory must level off and no good request may fail.
//
//   npm run build:ts && node bench/soak.mjs          # 10 minutes
//   SOAK_SECONDS=180 node bench/soak.mjs             # a shorter run
//
// Settings (environment): SOAK_SECONDS (600), SOAK_WORKERS (6 loops of requests), SOAK_SAMPLE_SECONDS (5),
// SOAK_SLOW_CLIENTS (20 slow connections open at most). Loopback only. The report goes to
// bench/results/soak-<date>.md (and .json); the exit code is 1 when a good request failed.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SECONDS = Number(process.env.SOAK_SECONDS ?? 600);
const WORKERS = Number(process.env.SOAK_WORKERS ?? 6);
const SAMPLE_MS = Number(process.env.SOAK_SAMPLE_SECONDS ?? 5) * 1000;
const MAX_SLOW = Number(process.env.SOAK_SLOW_CLIENTS ?? 20);
const CLI = path.join(REPO, 'dist/cli.js');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

if (!existsSync(CLI)) {
  console.error('bench/soak.mjs: dist/cli.js is missing; run `npm run build:ts` first');
  process.exit(1);
}
const example = path.join(REPO, 'examples/co2');
for (const file of ['data/co2_weekly.csv', 'models/co2_linear.onnx', 'models/co2_seasonal_naive.onnx']) {
  if (!existsSync(path.join(example, file))) {
    console.error(`bench/soak.mjs: examples/co2/${file} is missing; run \`npm run train:example\` first`);
    process.exit(1);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The pod: the bundled example's data and models, with and without the prediction cache, refreshed often.
// ---------------------------------------------------------------------------------------------------------

const pod = mkdtempSync(path.join(tmpdir(), 'forecastd-soak-'));
mkdirSync(path.join(pod, 'data'));
mkdirSync(path.join(pod, 'models'));
const csvPath = path.join(pod, 'data/co2_weekly.csv');
const csv = readFileSync(path.join(example, 'data/co2_weekly.csv'));
writeFileSync(csvPath, csv);
for (const m of ['co2_linear.onnx', 'co2_seasonal_naive.onnx']) copyFileSync(path.join(example, 'models', m), path.join(pod, 'models', m));
writeFileSync(
  path.join(pod, 'spicepod.yaml'),
  `version: v1beta1
kind: Spicepod
name: soak
datasets:
  - from: file:data/co2_weekly.csv
    name: co2
    params:
      columns: [co2]
    acceleration:
      refresh_check_interval: 2s
models:
  - from: file:models/co2_linear.onnx
    name: linear
    datasets: [co2]
    params: { fill_missing: linear }
  - from: file:models/co2_linear.onnx
    name: linear_uncached
    datasets: [co2]
    params: { fill_missing: linear, cache_predictions: false }
  - from: file:models/co2_seasonal_naive.onnx
    name: naive
    datasets: [co2]
    params: { fill_missing: linear, cache_predictions: false }
`,
);

// ---------------------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------------------

const child = spawn(process.execPath, [CLI, pod, '--http', '127.0.0.1:0', '--log-level', 'info'], {
  stdio: ['ignore', 'pipe', 'pipe'],
  env: { ...process.env, FORECASTD_LOG_FORMAT: 'json' },
});
// The start of the log (the listening line) and its latest lines are kept; the middle is dropped.
let serverLog = '';
const keep = (d) => {
  serverLog += d;
  if (serverLog.length > 400_000) serverLog = serverLog.slice(0, 100_000) + serverLog.slice(-200_000);
};
child.stderr.on('data', keep);
child.stdout.on('data', keep);
let exited = null;
child.on('exit', (code, signal) => (exited = { code, signal }));

async function serverPort() {
  for (let i = 0; i < 300; i++) {
    if (exited !== null) throw new Error(`forecastd exited at start: ${JSON.stringify(exited)}\n${serverLog}`);
    const m = /"url":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(serverLog);
    if (m) return Number(m[1]);
    await sleep(100);
  }
  throw new Error(`forecastd did not start listening:\n${serverLog}`);
}

function rssKiB() {
  const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)[1]);
}

// ---------------------------------------------------------------------------------------------------------
// Traffic
// ---------------------------------------------------------------------------------------------------------

const stats = {
  good: { sent: 0, failed: 0, byKind: {} },
  bad: { sent: 0, unexpected: 0, byKind: {} },
  vanished: 0,
  slow: 0,
  failures: [],
  unexpected: [],
};
const count = (group, kind) => {
  group.sent++;
  group.byKind[kind] = (group.byKind[kind] ?? 0) + 1;
};

/** Raw bytes out; resolves with the first status code, or 0 when the server closed without answering. */
function raw(port, bytes, { holdMs = 0 } = {}) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      socket.destroy();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(data);
      resolve(m ? Number(m[1]) : 0);
    };
    socket.on('data', (d) => {
      data += d.toString('latin1');
      if (/\r\n\r\n/.test(data) && holdMs === 0) finish();
    });
    socket.on('error', finish);
    socket.on('close', finish);
    socket.on('connect', () => socket.write(bytes));
    setTimeout(finish, 30_000);
  });
}

const req = (method, target, headers = [], body) => {
  const lines = [`${method} ${target} HTTP/1.1`, 'Host: soak', 'Connection: close', ...headers];
  if (body !== undefined) lines.push(`Content-Length: ${Buffer.isBuffer(body) ? body.length : Buffer.byteLength(body)}`);
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), Buffer.isBuffer(body) ? body : Buffer.from(body ?? '')]);
};
const post = (body, headers) => req('POST', '/v1/predict', headers, body);

/** Bad requests answered (or dropped) at once; expected status (or statuses), 0 = closed without an answer. */
const BAD = [
  ['unknown model', req('GET', '/v1/models/nope/predict'), 400],
  ['encoded traversal', req('GET', '/v1/models/%2e%2e%2F%2e%2e%2Fetc%2Fpasswd/predict'), 400],
  ['encoded NUL', req('GET', '/v1/models/a%00/predict'), 400],
  ['invalid UTF-8', req('GET', '/v1/models/%ff%fe/predict'), 400],
  ['long URL', req('GET', `/v1/models/${'x'.repeat(10_000)}/predict`), 400],
  ['PATCH', req('PATCH', '/v1/predict'), 405],
  ['DELETE', req('DELETE', '/v1/models/linear/predict'), 405],
  ['unknown path', req('GET', '/admin'), 404],
  ['garbage method', req('F@@', '/health'), 0],
  ['malformed JSON', post('{"predictions": ['), 400],
  ['wrong types', post('{"predictions":[{"model_name":1e400}]}'), 400],
  ['predictions object', post('{"predictions":{"model_name":"linear"}}'), 400],
  ['deep nesting', post('{"predictions":[' + '['.repeat(50_000) + ']'.repeat(50_000) + ']}'), 400],
  ['1001 items', post(JSON.stringify({ predictions: Array.from({ length: 1001 }, () => ({ model_name: 'linear' })) })), 400],
  ['invalid UTF-8 body', post(Buffer.concat([Buffer.from('{"predictions":[{"model_name":"'), Buffer.from([0xff]), Buffer.from('"}]}')])), 400],
  ['two Content-Length', Buffer.from('POST /v1/predict HTTP/1.1\r\nHost: soak\r\nContent-Length: 2\r\nContent-Length: 9\r\n\r\n{}'), 400],
  ['bad chunk size', Buffer.from('POST /v1/predict HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n'), 0],
  ['over 1 MiB declared', Buffer.from(`POST /v1/predict HTTP/1.1\r\nHost: soak\r\nConnection: close\r\nContent-Length: ${10 * 1024 * 1024}\r\n\r\n`), 413],
  // The client sends Connection: close and its whole body at once: uWebSockets.js then closes hard after the
  // 413, and the reset may reach the client before it reads the answer. Either outcome is the server's.
  ['over 1 MiB sent', req('POST', '/v1/predict', [], ' '.repeat(1024 * 1024 + 10)), [413, 0]],
  ['header block too large', req('GET', '/health', [`X-Big: ${'b'.repeat(1024 * 1024)}`]), 0],
];

let reference = null;

async function fetchJson(url, init) {
  const res = await fetch(url, init);
  return { status: res.status, body: await res.text() };
}

function predictionOf(body) {
  const m = /"prediction":(\[[^\]]*\])/.exec(body);
  return m ? m[1] : null;
}

async function good(base, kind) {
  count(stats.good, kind);
  try {
    let ok;
    let detail;
    if (kind === 'health') {
      const r = await fetchJson(`${base}/health`);
      ok = r.status === 200 && r.body === 'ok';
      detail = `${r.status} ${r.body}`;
    } else if (kind === 'models') {
      const r = await fetchJson(`${base}/v1/models?status=true`);
      ok = r.status === 200 && JSON.parse(r.body).length === 3;
      detail = `${r.status} ${r.body.slice(0, 200)}`;
    } else if (kind === 'post') {
      const r = await fetchJson(`${base}/v1/predict`, {
        method: 'POST',
        body: '{"predictions":[{"model_name":"linear"},{"model_name":"linear_uncached"},{"model_name":"naive"}]}',
      });
      const items = r.status === 200 ? JSON.parse(r.body).predictions : [];
      ok =
        items.length === 3 &&
        items.every((p) => p.status === 'Success') &&
        JSON.stringify(items[0].prediction) === JSON.stringify(JSON.parse(reference.linear)) &&
        JSON.stringify(items[2].prediction) === JSON.stringify(JSON.parse(reference.naive));
      detail = `${r.status} ${r.body.slice(0, 300)}`;
    } else {
      const r = await fetchJson(`${base}/v1/models/${kind}/predict`);
      const expected = kind === 'naive' ? reference.naive : reference.linear;
      ok = r.status === 200 && predictionOf(r.body) === expected;
      detail = `${r.status} ${r.body.slice(0, 300)}`;
    }
    if (!ok) {
      stats.good.failed++;
      if (stats.failures.length < 20) stats.failures.push(`${kind}: ${detail}`);
    }
  } catch (error) {
    stats.good.failed++;
    if (stats.failures.length < 20) stats.failures.push(`${kind}: ${error.message}`);
  }
}

async function bad(port) {
  const [name, bytes, expected] = BAD[Math.floor(Math.random() * BAD.length)];
  count(stats.bad, name);
  const status = await raw(port, bytes);
  if (Array.isArray(expected) ? !expected.includes(status) : status !== expected) {
    stats.bad.unexpected++;
    if (stats.unexpected.length < 20) stats.unexpected.push(`${name}: got ${status}, expected ${expected}`);
  }
}

async function vanish(port) {
  stats.vanished++;
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await new Promise((resolve) => socket.on('connect', resolve));
  const which = Math.random();
  if (which < 0.4) socket.write(req('GET', '/v1/models/linear_uncached/predict'));
  else if (which < 0.7) socket.write(post('{"predictions":[{"model_name":"naive"},{"model_name":"linear_uncached"}]}'));
  else socket.write('POST /v1/predict HTTP/1.1\r\nHost: soak\r\nContent-Length: 500\r\n\r\n{"predictions":[{"mod');
  await sleep(Math.random() * 3);
  socket.destroy();
}

let slowOpen = 0;
/** A slow client: headers a byte at a time, or a body that never comes; the server's idle timeout ends it. */
function slow(port) {
  if (slowOpen >= MAX_SLOW) return;
  slowOpen++;
  stats.slow++;
  const socket = net.connect(port, '127.0.0.1');
  const text = Math.random() < 0.5 ? 'GET /health HTTP/1.1\r\nHost: soak\r\nX-Pad: ' + 'p'.repeat(200) : 'POST /v1/predict HTTP/1.1\r\nHost: soak\r\nContent-Length: 100\r\n\r\n{';
  let i = 0;
  const timer = setInterval(() => {
    if (i < text.length && !socket.destroyed) socket.write(text[i++]);
  }, 250);
  const end = () => {
    clearInterval(timer);
    socket.destroy();
  };
  socket.on('error', end);
  socket.on('close', () => {
    end();
    slowOpen--;
  });
}

const GOOD_KINDS = ['linear', 'linear_uncached', 'naive', 'post', 'health', 'models'];

async function worker(base, port, deadline) {
  while (Date.now() < deadline && exited === null) {
    const r = Math.random();
    if (r < 0.65) await good(base, GOOD_KINDS[Math.floor(Math.random() * GOOD_KINDS.length)]);
    else if (r < 0.9) await bad(port);
    else if (r < 0.98) await vanish(port);
    else slow(port);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------------------

const samples = [];
let report;
try {
  const port = await serverPort();
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    const r = await fetchJson(`${base}/v1/ready`).catch(() => ({ status: 0 }));
    if (r.status === 200) break;
    await sleep(100);
  }
  const linear = await fetchJson(`${base}/v1/models/linear/predict`);
  const naive = await fetchJson(`${base}/v1/models/naive/predict`);
  reference = { linear: predictionOf(linear.body), naive: predictionOf(naive.body) };
  if (reference.linear === null || reference.naive === null) throw new Error(`no reference prediction: ${linear.body} ${naive.body}`);

  const started = Date.now();
  const deadline = started + SECONDS * 1000;
  samples.push({ s: 0, rssKiB: rssKiB() });
  const sampler = setInterval(() => {
    if (exited === null) samples.push({ s: Math.round((Date.now() - started) / 1000), rssKiB: rssKiB() });
  }, SAMPLE_MS);
  // The data file is rewritten now and then (same rows, new mtime): refreshes swap snapshots under load.
  const rewriter = setInterval(() => writeFileSync(csvPath, csv), 7000);
  const progress = setInterval(() => {
    const last = samples[samples.length - 1];
    console.log(
      `t=${Math.round((Date.now() - started) / 1000)}s good=${stats.good.sent} failed=${stats.good.failed} bad=${stats.bad.sent} vanished=${stats.vanished} slow=${stats.slow} rss=${(last.rssKiB / 1024).toFixed(1)} MiB`,
    );
  }, 30_000);
  await Promise.all(Array.from({ length: WORKERS }, () => worker(base, port, deadline)));
  clearInterval(sampler);
  clearInterval(rewriter);
  clearInterval(progress);
  samples.push({ s: Math.round((Date.now() - started) / 1000), rssKiB: rssKiB() });
  const health = await fetchJson(`${base}/health`);
  if (health.status !== 200) throw new Error(`/health after the run: ${health.status}`);
  const metrics = (await fetchJson(`${base}/metrics`)).body;
  const inFlight = /^http_requests_in_flight (\d+)$/m.exec(metrics)?.[1];

  const rss = samples.map((x) => x.rssKiB);
  const at = (fraction) => samples[Math.min(samples.length - 1, Math.floor(fraction * (samples.length - 1)))].rssKiB;
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const quarter = Math.max(1, Math.floor(samples.length / 4));
  report = {
    date: new Date().toISOString(),
    seconds: SECONDS,
    workers: WORKERS,
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', memoryGiB: +(totalmem() / 2 ** 30).toFixed(1), node: process.version },
    good: stats.good,
    bad: stats.bad,
    vanished: stats.vanished,
    slowClients: stats.slow,
    failures: stats.failures,
    unexpectedBad: stats.unexpected,
    inFlightAfter: inFlight === undefined ? null : Number(inFlight) - 1,
    rssMiB: {
      start: +(rss[0] / 1024).toFixed(1),
      min: +(Math.min(...rss) / 1024).toFixed(1),
      max: +(Math.max(...rss) / 1024).toFixed(1),
      end: +(rss[rss.length - 1] / 1024).toFixed(1),
      atQuarter: +(at(0.25) / 1024).toFixed(1),
      // Levelling off: the last quarter's mean against the second quarter's.
      secondQuarterMean: +(mean(rss.slice(quarter, 2 * quarter)) / 1024).toFixed(1),
      lastQuarterMean: +(mean(rss.slice(-quarter)) / 1024).toFixed(1),
    },
    samples,
  };
} catch (error) {
  console.error(`bench/soak.mjs: ${error.stack ?? error}`);
  console.error(serverLog.slice(-4000));
  child.kill('SIGKILL');
  rmSync(pod, { recursive: true, force: true });
  process.exit(1);
}

child.kill('SIGTERM');
await new Promise((resolve) => (exited !== null ? resolve() : child.on('exit', resolve)));
rmSync(pod, { recursive: true, force: true });

const r = report.rssMiB;
const lines = [
  `# Soak: ${report.date.slice(0, 10)}`,
  '',
  `\`SOAK_SECONDS=${SECONDS} node bench/soak.mjs\`: ${WORKERS} request loops against \`node dist/cli.js\` on a pod of the`,
  'bundled example (three model entries, cache on and off, the data file rewritten every 7 s so refreshes swap',
  `snapshots under load). Machine: ${report.machine.cpus} × ${report.machine.cpu}, ${report.machine.memoryGiB} GiB, Node ${report.machine.node}.`,
  '',
  '| figure | value |',
  '| --- | --- |',
  `| good requests sent | ${report.good.sent} |`,
  `| good requests failed | ${report.good.failed} |`,
  `| bad requests sent | ${report.bad.sent} (${Object.keys(report.bad.byKind).length} kinds) |`,
  `| bad requests answered otherwise than documented | ${report.bad.unexpected} |`,
  `| clients that vanished mid-request | ${report.vanished} |`,
  `| slow clients (closed by the idle timeout) | ${report.slowClients} |`,
  `| requests still in flight after the run | ${report.inFlightAfter} |`,
  `| RSS start / min / max / end (MiB) | ${r.start} / ${r.min} / ${r.max} / ${r.end} |`,
  `| RSS mean, 2nd quarter → last quarter (MiB) | ${r.secondQuarterMean} → ${r.lastQuarterMean} |`,
  '',
  ...(report.failures.length > 0 ? ['Failures (first 20):', '', ...report.failures.map((f) => `- ${f}`), ''] : []),
  ...(report.unexpectedBad.length > 0 ? ['Unexpected answers to bad requests (first 20):', '', ...report.unexpectedBad.map((f) => `- ${f}`), ''] : []),
  '## RSS over time',
  '',
  '| s | RSS MiB |',
  '| --- | --- |',
  ...report.samples.map((x) => `| ${x.s} | ${(x.rssKiB / 1024).toFixed(1)} |`),
  '',
];
const resultsDir = path.join(REPO, 'bench/results');
mkdirSync(resultsDir, { recursive: true });
const stem = path.join(resultsDir, `soak-${report.date.slice(0, 10)}`);
writeFileSync(`${stem}.md`, lines.join('\n'));
writeFileSync(`${stem}.json`, JSON.stringify(report, null, 2) + '\n');
console.log(lines.slice(6, 18).join('\n'));
console.log(`report: ${path.relative(REPO, stem)}.md`);
process.exit(report.good.failed === 0 ? 0 : 1);
