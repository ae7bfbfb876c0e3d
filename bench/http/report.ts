/** Renders an HTTP benchmark run as Markdown (tables, goals) and as SVG throughput–latency curves. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  HEAVY_WORKLOADS,
  type HttpBenchResults,
  PEER_KEYS,
  PEER_SHORT_LABELS,
  type Point,
  type ServerKey,
  serverLabel,
  type Workload,
} from './results.js';
import { escapeXml, niceStep } from '../../src/bench/svg.js';

const SERVER_ORDER: readonly ServerKey[] = [
  'forecastd-cache-off',
  'forecastd-baseline',
  'forecastd-cache-on',
  'peer',
  'peer-one-thread',
  'http-ceiling',
];
const GOAL_CONNECTIONS = 64;
/** The connection counts of the heavy models' goals, each a median of alternating runs in a full run. */
const HEAVY_GOAL_CONNECTIONS: readonly number[] = [1, 8, 64];

function find(results: HttpBenchResults, workload: string, server: ServerKey, connections: number): Point | undefined {
  return results.points.find((p) => p.workload === workload && p.server === server && p.connections === connections);
}

function label(results: HttpBenchResults, server: ServerKey): string {
  return serverLabel(server, results.environment);
}

/** The baseline's name in sentences: "forecastd 21a3013" for a build of a commit, else "the baseline". */
function baselineName(results: HttpBenchResults): string {
  return results.environment.baselineLabel ?? 'the baseline';
}

/** The lower of the two ceilings a point can be held to: HTTP at the same connections, and inference. */
export function nearerCeiling(results: HttpBenchResults, workload: Workload, point: Point): number | undefined {
  const http = find(results, workload.id, 'http-ceiling', point.connections)?.rps;
  if (point.server === 'http-ceiling') return undefined;
  // With the cache on, a repeated request runs no inference: only the HTTP ceiling applies.
  if (point.server === 'forecastd-cache-on') return http;
  if (http === undefined) return workload.inferenceCeilingRps;
  return Math.min(http, workload.inferenceCeilingRps);
}

/**
 * The faster of the two peers (default threads, one intra-op thread) at a point: the higher median throughput.
 * Runs from before both were measured have one.
 */
export function fasterPeer(results: HttpBenchResults, workload: string, connections: number): Point | undefined {
  let best: Point | undefined;
  for (const key of PEER_KEYS) {
    const p = find(results, workload, key, connections);
    if (p && (best === undefined || p.rps > best.rps)) best = p;
  }
  return best;
}

/** A forecastd point's throughput over the faster peer's at the same workload and connection count. */
export function peerRatio(results: HttpBenchResults, point: Point): number | undefined {
  if (!point.server.startsWith('forecastd')) return undefined;
  const peer = fasterPeer(results, point.workload, point.connections);
  return peer && peer.rps > 0 ? point.rps / peer.rps : undefined;
}

/** forecastd's (cache off) throughput over the baseline's at the same point. */
export function baselineRatio(results: HttpBenchResults, point: Point): number | undefined {
  if (point.server !== 'forecastd-cache-off') return undefined;
  const baseline = find(results, point.workload, 'forecastd-baseline', point.connections);
  return baseline && baseline.rps > 0 ? point.rps / baseline.rps : undefined;
}

function peerName(point: Point): string {
  return PEER_SHORT_LABELS[point.server] ?? point.server;
}

function fixed(value: number | undefined | null, digits: number): string {
  return value === undefined || value === null || !Number.isFinite(value) ? '—' : value.toFixed(digits);
}

function times(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? '' : `${value.toFixed(2)}×`;
}

function rate(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

function percent(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? '—' : `${Math.round(value * 100)}%`;
}

function connectionsText(c: number): string {
  return `${c} connection${c === 1 ? '' : 's'}`;
}

/** "(median of 5 alternating runs)" where a point was repeated. */
function repeatsText(point: Point | undefined): string {
  return point?.repeats ? ` (median of ${point.repeats.length} alternating runs)` : '';
}

export interface Goal {
  readonly goal: string;
  readonly measured: string;
  readonly target: string;
  readonly met: boolean | undefined;
}

/**
 * A goal from its measurement: `measured` is undefined when the run lacks the points. A goal whose points saw
 * errors (socket errors, timeouts, non-2xx answers) is not met, whatever the numbers.
 */
function goal(
  text: string,
  target: string,
  measured: { readonly text: string; readonly pass: boolean; readonly points: readonly Point[] } | undefined,
  missing = 'not measured',
): Goal {
  if (!measured) return { goal: text, measured: missing, target, met: undefined };
  const errors = measured.points.reduce((n, p) => n + p.socketErrors + p.non2xx, 0);
  return {
    goal: text,
    measured: errors > 0 ? `${measured.text}; ${errors} errors` : measured.text,
    target,
    met: measured.pass && errors === 0,
  };
}

function versusFasterPeer(results: HttpBenchResults, workload: string, c: number, min: number): Goal {
  const mine = find(results, workload, 'forecastd-cache-off', c);
  const peer = fasterPeer(results, workload, c);
  const ratio = mine ? peerRatio(results, mine) : undefined;
  return goal(
    `${workload} model, ${connectionsText(c)}, cache off: throughput vs the faster peer${repeatsText(mine)}`,
    `≥ ${min}×`,
    mine && peer && ratio !== undefined
      ? {
          text:
            `${ratio.toFixed(2)}× the ${peerName(peer)} (${rate(mine.rps)} vs ${rate(peer.rps)} req/s; ` +
            `p99 ${mine.p99Ms.toFixed(2)} vs ${peer.p99Ms.toFixed(2)} ms)`,
          pass: ratio >= min,
          points: [mine],
        }
      : undefined,
  );
}

function p99VersusFasterPeer(results: HttpBenchResults, workload: string, c: number, comparison: 'lower' | 'not higher'): Goal {
  const mine = find(results, workload, 'forecastd-cache-off', c);
  const peer = fasterPeer(results, workload, c);
  return goal(
    `${workload} model, ${connectionsText(c)}, cache off: p99 latency vs the faster peer${repeatsText(mine)}`,
    comparison,
    mine && peer
      ? {
          text: `${mine.p99Ms.toFixed(2)} ms vs ${peer.p99Ms.toFixed(2)} ms (${peerName(peer)})`,
          pass: comparison === 'lower' ? mine.p99Ms < peer.p99Ms : mine.p99Ms <= peer.p99Ms,
          points: [mine],
        }
      : undefined,
  );
}

function versusBaseline(results: HttpBenchResults, workload: string, c: number, min: number): Goal {
  const mine = find(results, workload, 'forecastd-cache-off', c);
  const base = find(results, workload, 'forecastd-baseline', c);
  const ratio = mine ? baselineRatio(results, mine) : undefined;
  return goal(
    `${workload} model, ${connectionsText(c)}, cache off: throughput vs ${baselineName(results)}${repeatsText(mine)}`,
    `≥ ${min.toFixed(2)}×`,
    mine && base && ratio !== undefined
      ? {
          text:
            `${ratio.toFixed(2)}× (${rate(mine.rps)} vs ${rate(base.rps)} req/s; ` +
            `p99 ${mine.p99Ms.toFixed(2)} vs ${base.p99Ms.toFixed(2)} ms)`,
          pass: ratio >= min,
          points: [mine],
        }
      : undefined,
    results.environment.baseline === undefined ? 'not measured (no baseline: --baseline-ref REF)' : 'not measured',
  );
}

/**
 * The bench models of the goals: the heavy ones, then every other single-model GET workload the run measured
 * (the small model and the bundled example in a full run).
 */
function goalWorkloads(results: HttpBenchResults): string[] {
  const others = results.workloads.filter((w) => w.method === 'GET' && !HEAVY_WORKLOADS.includes(w.id)).map((w) => w.id);
  return [...HEAVY_WORKLOADS, ...others];
}

/**
 * Issue 24's goals: at 1 connection ≥ 1.1× the faster peer on every bench model; at 8 and 64 connections ≥ 1.0×
 * the baseline on every bench model and ≥ 1.25× on the heavy MLP at 64; at 64 connections ≥ 5× the faster peer
 * on the heavy MLP, with a lower p99 than that peer.
 */
export function goals(results: HttpBenchResults): Goal[] {
  const out: Goal[] = [];
  const models = goalWorkloads(results);
  for (const w of models) out.push(versusFasterPeer(results, w, 1, 1.1));
  for (const c of [8, 64]) {
    for (const w of models) out.push(versusBaseline(results, w, c, w === 'heavy' && c === 64 ? 1.25 : 1.0));
  }
  out.push(versusFasterPeer(results, 'heavy', 64, 5));
  out.push(p99VersusFasterPeer(results, 'heavy', 64, 'lower'));
  return out;
}

/** Goals of earlier issues, still checked: the heavy model's p99 at 1 and throughput at 8, the cache, the small model. */
export function otherGoals(results: HttpBenchResults): Goal[] {
  const out: Goal[] = [];
  out.push(p99VersusFasterPeer(results, 'heavy', 1, 'not higher'));
  out.push(versusFasterPeer(results, 'heavy', 8, 2.5));
  for (const w of results.workloads) {
    if (w.method !== 'GET') continue;
    const c = GOAL_CONNECTIONS;
    const on = find(results, w.id, 'forecastd-cache-on', c);
    const ceiling = on ? nearerCeiling(results, w, on) : undefined;
    out.push(
      goal(
        `${w.id} model, ${c} connections, cache on: fraction of the HTTP ceiling`,
        '≥ 80%',
        on && ceiling
          ? { text: `${percent(on.rps / ceiling)} (${rate(on.rps)} of ${rate(ceiling)} req/s)`, pass: on.rps / ceiling >= 0.8, points: [on] }
          : undefined,
      ),
    );
  }
  out.push(versusFasterPeer(results, 'small', GOAL_CONNECTIONS, 2));
  return out;
}

function goalTable(list: readonly Goal[]): string[] {
  const lines = ['| goal | measured | target | met |', '| --- | --- | --- | --- |'];
  for (const g of list) {
    lines.push(`| ${g.goal} | ${g.measured} | ${g.target} | ${g.met === undefined ? '—' : g.met ? 'met' : 'not met'} |`);
  }
  return lines;
}

/**
 * One row per heavy model and goal connection count: forecastd (cache off), the faster peer, the baseline, with
 * the ratios and each one's p99.
 */
function heavyTable(results: HttpBenchResults): string[] {
  const lines = [
    '| model | connections | runs | forecastd req/s | p99 ms | faster peer | peer req/s | peer p99 ms | × faster peer | ' +
      `${results.environment.baselineLabel ?? 'baseline'} req/s | p99 ms | × baseline |`,
    '| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  let rows = 0;
  for (const w of HEAVY_WORKLOADS) {
    for (const c of HEAVY_GOAL_CONNECTIONS) {
      const mine = find(results, w, 'forecastd-cache-off', c);
      if (!mine) continue;
      rows++;
      const peer = fasterPeer(results, w, c);
      const base = find(results, w, 'forecastd-baseline', c);
      lines.push(
        `| ${w} | ${c} | ${mine.repeats?.length ?? 1} | ${rate(mine.rps)} | ${mine.p99Ms.toFixed(2)} | ` +
          `${peer ? peerName(peer) : '—'} | ${peer ? rate(peer.rps) : '—'} | ${peer ? peer.p99Ms.toFixed(2) : '—'} | ` +
          `${times(peerRatio(results, mine)) || '—'} | ${base ? rate(base.rps) : '—'} | ${base ? base.p99Ms.toFixed(2) : '—'} | ` +
          `${times(baselineRatio(results, mine)) || '—'} |`,
      );
    }
  }
  return rows > 0 ? lines : [];
}

/** A server's name in a table, with the faster of the two peers at that point marked. */
function serverCell(results: HttpBenchResults, p: Point): string {
  const name = label(results, p.server);
  if (!PEER_KEYS.includes(p.server)) return name;
  const faster = fasterPeer(results, p.workload, p.connections);
  return faster?.server === p.server && PEER_KEYS.some((k) => k !== p.server && find(results, p.workload, k, p.connections))
    ? `${name} (faster peer)`
    : name;
}

function workloadTable(results: HttpBenchResults, w: Workload): string[] {
  const lines = [
    '| connections | server | runs | req/s | p50 ms | p99 ms | mean batch | CPU s / 1k req | errors | × faster peer | × baseline | of nearer ceiling |',
    '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const c of results.connections) {
    for (const server of SERVER_ORDER) {
      const p = find(results, w.id, server, c);
      if (!p) continue;
      const ceiling = nearerCeiling(results, w, p);
      const batch = PEER_KEYS.includes(server) ? '1' : server === 'http-ceiling' ? '' : fixed(p.meanBatchSize, 1);
      lines.push(
        `| ${c} | ${serverCell(results, p)} | ${p.repeats?.length ?? 1} | ${rate(p.rps)} | ${p.p50Ms.toFixed(2)} | ${p.p99Ms.toFixed(2)} | ${batch} | ` +
          `${fixed(p.cpuSecondsPer1k, 3)} | ${p.socketErrors + p.non2xx} | ${times(peerRatio(results, p))} | ` +
          `${times(baselineRatio(results, p))} | ${ceiling === undefined ? '' : percent(p.rps / ceiling)} |`,
      );
    }
  }
  return lines;
}

/** File name of a workload's SVG curve for a run saved as `stem` (e.g. http-2025-01-01). */
export function svgName(stem: string, workload: string): string {
  return `${stem}-${workload}.svg`;
}

/**
 * CPU steal over every measurement of the run (each repetition counted), from /proc/stat: the median, the highest
 * and where it was. Null for runs from before steal was recorded, or where /proc/stat has none.
 */
function stealLine(results: HttpBenchResults): string | null {
  const samples: { steal: number; where: string }[] = [];
  for (const p of results.points) {
    for (const r of p.repeats ?? [p]) {
      if (typeof r.stealPercent === 'number') {
        samples.push({ steal: r.stealPercent, where: `${p.workload}, ${connectionsText(p.connections)}, ${label(results, p.server)}` });
      }
    }
  }
  if (samples.length === 0) return null;
  const sorted = [...samples].sort((a, b) => a.steal - b.steal);
  const mid = sorted[Math.floor(sorted.length / 2)] as { steal: number };
  const top = sorted[sorted.length - 1] as { steal: number; where: string };
  const over = samples.filter((s) => s.steal > 5).length;
  return (
    `- CPU steal during the measurements (time the hypervisor gave this machine's CPUs to others, /proc/stat): ` +
    `median ${mid.steal.toFixed(1)}%, highest ${top.steal.toFixed(1)}% (${top.where}); ` +
    `${over} of ${samples.length} measurements above 5%`
  );
}

/** Every run of the repeated cache-off points: forecastd, the baseline and both peers, req/s and steal per run. */
function singleRunsTable(results: HttpBenchResults): string[] {
  const servers: readonly ServerKey[] = ['forecastd-cache-off', 'forecastd-baseline', 'peer', 'peer-one-thread'];
  const rows: string[] = [];
  const withSteal = results.points.some((p) => p.repeats?.some((r) => typeof r.stealPercent === 'number') === true);
  for (const w of results.workloads) {
    for (const c of results.connections) {
      for (const server of servers) {
        const p = find(results, w.id, server, c);
        if (p?.repeats === undefined || p.repeats.length < 2) continue;
        const rps = p.repeats.map((r) => rate(r.rps)).join(', ');
        const steal = p.repeats.map((r) => (typeof r.stealPercent === 'number' ? r.stealPercent.toFixed(1) : '—')).join(', ');
        rows.push(`| ${w.id} | ${c} | ${label(results, server)} | ${rate(p.rps)} | ${rps} |${withSteal ? ` ${steal} |` : ''}`);
      }
    }
  }
  if (rows.length === 0) return [];
  return [
    `| model | connections | server | median req/s | req/s of each run |${withSteal ? ' steal % of each run |' : ''}`,
    `| --- | ---: | --- | ---: | --- |${withSteal ? ' --- |' : ''}`,
    ...rows,
  ];
}

export function renderMarkdown(results: HttpBenchResults, stem: string): string {
  const e = results.environment;
  const inf = results.inference;
  const lines: string[] = [];
  lines.push(`# HTTP benchmark, ${e.date}${e.quick ? ' (smoke run, BENCH_QUICK=1: short points, not for comparison)' : ''}`);
  lines.push('');
  lines.push(`- Command: \`${e.command}\``);
  lines.push(`- Machine: ${e.cpuModel}, ${e.cores} cores; ${e.os}; Linux ${e.kernel}; Node ${e.node}; ${e.wrk}`);
  lines.push(`- Load average when the run started: ${e.loadAverageAtStart.map((l) => l.toFixed(2)).join(', ')}`);
  lines.push(`- forecastd: ${e.forecastd}`);
  const steal = stealLine(results);
  if (steal !== null) lines.push(steal);
  if (e.baseline !== undefined) lines.push(`- Baseline${e.baselineLabel ? ` (${e.baselineLabel})` : ''}: ${e.baseline}`);
  lines.push(`- Peer, default threads: ${e.peer}`);
  if (e.peerOneThread !== undefined) lines.push(`- Peer, 1 intra-op thread: ${e.peerOneThread}`);
  const repeated =
    e.repeats !== undefined && e.repeats > 1
      ? e.repeatConnections !== undefined && e.repeatConnections.length > 0 && (e.repeatWorkloads ?? []).length > 0
        ? ` The points at ${e.repeatConnections.join(', ')} connections of ${(e.repeatWorkloads ?? []).join(', ')} were measured ` +
          `${e.repeats} times, the targets alternating (forecastd, the baseline and the peers every time, the cache-on ` +
          'server and the HTTP ceiling once); their numbers are the medians ("runs" in the tables).'
        : ` Where a point was measured ${e.repeats} times (the targets alternating), its numbers are the medians.`
      : '';
  lines.push(
    `- Each point: \`wrk -t1 -cN -d${e.seconds}s\` after a ${e.warmupSeconds} s warm-up on the same connections; ` +
      'the servers under test run side by side and are measured in turn at each connection count. ' +
      'CPU is the server process (every thread) from /proc/PID/stat; mean batch from forecastd_batch_size.' +
      repeated,
  );
  lines.push(
    '- "× faster peer": forecastd\'s throughput over the faster of the two peers at the same point (the higher median ' +
      'throughput, marked in the tables); the p99 goals compare with that same peer.',
  );
  lines.push('');
  lines.push('## Goals');
  lines.push('');
  lines.push(...goalTable(goals(results)));
  lines.push('');
  const heavy = heavyTable(results);
  if (heavy.length > 0) {
    lines.push(`## Heavy models at ${HEAVY_GOAL_CONNECTIONS.join(', ')} connections (cache off)`);
    lines.push('');
    lines.push(...heavy);
    lines.push('');
  }
  const runs = singleRunsTable(results);
  if (runs.length > 0) {
    lines.push('## Single runs of the repeated points (cache off)');
    lines.push('');
    lines.push(
      'Each run in the order measured (with the CPU steal during it, where recorded): the spread shows how far one run ' +
        'of this machine can move a ratio.',
    );
    lines.push('');
    lines.push(...runs);
    lines.push('');
  }
  lines.push('## Other goals');
  lines.push('');
  lines.push(...goalTable(otherGoals(results)));
  lines.push('');
  lines.push('The library goal (distinct windows from 64 callers, ≥ 85% of the inference ceiling) is measured by the library benchmark.');
  lines.push('');
  lines.push(
    `## Inference ceiling (the addon alone: ONNX Runtime ${inf.ortVersion}, ${inf.intraOpThreads} intra-op thread, ` +
      `${inf.runThreads} run threads, ${inf.inFlight} runs in flight)`,
  );
  lines.push('');
  lines.push('| model | best batch | predictions/s | CPU s / 1k predictions | predictions/s by batch size |');
  lines.push('| --- | ---: | ---: | ---: | --- |');
  for (const m of inf.models) {
    const sweep = m.sweep.map((s) => `${s.batchSize}: ${rate(s.predictionsPerSecond)}`).join(', ');
    lines.push(
      `| ${m.name} | ${m.best.batchSize} | ${rate(m.best.predictionsPerSecond)} | ${fixed(m.best.cpuSecondsPer1kPredictions, 3)} | ${sweep} |`,
    );
  }
  lines.push('');
  lines.push('## Workloads');
  for (const w of results.workloads) {
    lines.push('');
    lines.push(`### ${w.title}`);
    lines.push('');
    lines.push(
      `\`${w.method} ${w.path}\`, ${w.responseBytes}-byte response; models per request: ${w.models.join(', ')}; ` +
        `inference ceiling ${rate(w.inferenceCeilingRps)} req/s.`,
    );
    lines.push('');
    lines.push(...workloadTable(results, w));
    lines.push('');
    lines.push(`![${w.id}: throughput against latency](${svgName(stem, w.id)})`);
  }
  lines.push('');
  lines.push('## Checks before measuring');
  lines.push('');
  for (const check of results.checks) lines.push(`- ${check}`);
  lines.push('');
  return lines.join('\n');
}

/** The goals, the heavy models' table and one row per workload and server at 64 connections, for bench/README.md. */
export function renderSummary(results: HttpBenchResults, resultsLink: string): string {
  const lines: string[] = [];
  const e = results.environment;
  lines.push(`Latest run: ${e.date}, ${e.cpuModel} (${e.cores} cores), Node ${e.node}, ${e.wrk}. Full tables: [${resultsLink}](${resultsLink}).`);
  if (e.baseline !== undefined) lines.push(`Baseline: ${e.baseline}.`);
  lines.push('');
  lines.push(...goalTable(goals(results)));
  lines.push('');
  const heavy = heavyTable(results);
  if (heavy.length > 0) {
    lines.push(...heavy);
    lines.push('');
  }
  lines.push(...goalTable(otherGoals(results)));
  lines.push('');
  lines.push(`At ${GOAL_CONNECTIONS} connections:`);
  lines.push('');
  lines.push('| workload | server | req/s | p50 ms | p99 ms | mean batch | CPU s / 1k req | × faster peer | × baseline | of nearer ceiling |');
  lines.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const w of results.workloads) {
    for (const server of SERVER_ORDER) {
      const p = find(results, w.id, server, GOAL_CONNECTIONS);
      if (!p || server === 'http-ceiling') continue;
      const ceiling = nearerCeiling(results, w, p);
      const batch = PEER_KEYS.includes(server) ? '1' : fixed(p.meanBatchSize, 1);
      lines.push(
        `| ${w.id} | ${serverCell(results, p)} | ${rate(p.rps)} | ${p.p50Ms.toFixed(2)} | ${p.p99Ms.toFixed(2)} | ${batch} | ` +
          `${fixed(p.cpuSecondsPer1k, 3)} | ${times(peerRatio(results, p))} | ${times(baselineRatio(results, p))} | ${
            ceiling === undefined ? '' : percent(p.rps / ceiling)
          } |`,
      );
    }
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// SVG
// ---------------------------------------------------------------------------------------------------------------

const COLORS: Readonly<Record<ServerKey, string>> = {
  'forecastd-cache-off': '#1f77b4',
  'forecastd-baseline': '#9467bd',
  'forecastd-cache-on': '#2ca02c',
  peer: '#d62728',
  'peer-one-thread': '#ff7f0e',
  'http-ceiling': '#7f7f7f',
};

/** Shorter legend entries where the table labels would not fit a legend column. */
const LEGEND_LABELS: Readonly<Partial<Record<ServerKey, string>>> = {
  peer: 'peer, default threads',
  'peer-one-thread': 'peer, intraOpNumThreads 1',
};

function compact(value: number): string {
  if (value >= 1000) return `${Number((value / 1000).toPrecision(3))}k`;
  return String(Number(value.toPrecision(3)));
}

/**
 * Throughput (x, req/s) against latency (y, ms, log scale) for one workload: one curve per server through its
 * connection counts, p99 solid, p50 dashed, each point labelled with its connection count.
 */
export function renderSvg(results: HttpBenchResults, w: Workload): string {
  const width = 720;
  const height = 440;
  const margin = { left: 70, right: 20, top: 95, bottom: 50 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const points = results.points.filter((p) => p.workload === w.id);
  const maxRps = Math.max(1, ...points.map((p) => p.rps));
  const latencies = points.flatMap((p) => [p.p50Ms, p.p99Ms]).filter((v) => v > 0);
  const minLat = 10 ** Math.floor(Math.log10(Math.max(1e-3, Math.min(...latencies, 1))));
  const maxLat = 10 ** Math.ceil(Math.log10(Math.max(...latencies, minLat * 10)));
  // The axis stretches to show the inference ceiling when it is near the measured throughputs.
  const xExtent = w.inferenceCeilingRps <= maxRps * 1.5 ? Math.max(maxRps, w.inferenceCeilingRps) : maxRps;
  const xStep = niceStep(xExtent, 6);
  const xMax = Math.ceil((xExtent * 1.05) / xStep) * xStep;
  const x = (rps: number): number => margin.left + (rps / xMax) * plotW;
  const y = (ms: number): number => {
    const clamped = Math.max(ms, minLat);
    return margin.top + plotH - ((Math.log10(clamped) - Math.log10(minLat)) / (Math.log10(maxLat) - Math.log10(minLat))) * plotH;
  };
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      'font-family="sans-serif" font-size="11">',
  );
  out.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  out.push(`<text x="${width / 2}" y="18" text-anchor="middle" font-size="13">${escapeXml(w.title)}</text>`);
  // Legend: two columns.
  const present = SERVER_ORDER.filter((s) => points.some((p) => p.server === s));
  present.forEach((server, i) => {
    const lx = margin.left + (i % 2) * 320;
    const ly = 36 + Math.floor(i / 2) * 15;
    const name = LEGEND_LABELS[server] ?? label(results, server);
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 20}" y2="${ly}" stroke="${COLORS[server]}" stroke-width="2"/>`);
    out.push(`<text x="${lx + 24}" y="${ly + 4}">${escapeXml(name)}</text>`);
  });
  const run = `${results.environment.date}${results.environment.quick ? ', smoke run' : ''}`;
  const note = `${run}; solid: p99, dashed: p50; labels: connections`;
  out.push(`<text x="${margin.left + plotW}" y="${margin.top - 6}" text-anchor="end" fill="#555">${escapeXml(note)}</text>`);
  // Grid and axes.
  for (let v = 0; v <= xMax + 1e-9; v += xStep) {
    out.push(`<line x1="${x(v)}" y1="${margin.top}" x2="${x(v)}" y2="${margin.top + plotH}" stroke="#eee"/>`);
    out.push(`<text x="${x(v)}" y="${margin.top + plotH + 16}" text-anchor="middle">${compact(v)}</text>`);
  }
  for (let v = minLat; v <= maxLat * 1.0001; v *= 10) {
    out.push(`<line x1="${margin.left}" y1="${y(v)}" x2="${margin.left + plotW}" y2="${y(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${margin.left - 6}" y="${y(v) + 4}" text-anchor="end">${compact(v)}</text>`);
  }
  out.push(
    `<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`,
  );
  out.push(`<text x="${margin.left + plotW / 2}" y="${height - 10}" text-anchor="middle">requests per second</text>`);
  out.push(
    `<text x="16" y="${margin.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 16 ${margin.top + plotH / 2})">` +
      'latency, ms (log scale)</text>',
  );
  // The inference ceiling, where it falls within reach of the measured throughputs.
  if (w.inferenceCeilingRps <= xMax) {
    const cx = x(w.inferenceCeilingRps).toFixed(1);
    out.push(`<line x1="${cx}" y1="${margin.top}" x2="${cx}" y2="${margin.top + plotH}" stroke="#9467bd" stroke-dasharray="2 3"/>`);
    out.push(`<text x="${Number(cx) - 4}" y="${margin.top + 12}" text-anchor="end" fill="#9467bd">inference ceiling</text>`);
  }
  // Curves.
  for (const server of present) {
    const series = points.filter((p) => p.server === server).sort((a, b) => a.connections - b.connections);
    for (const [key, dash] of [
      ['p99Ms', ''],
      ['p50Ms', ' stroke-dasharray="5 4"'],
    ] as const) {
      const path = series.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p.rps).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' ');
      out.push(`<path d="${path}" fill="none" stroke="${COLORS[server]}" stroke-width="${key === 'p99Ms' ? 2 : 1.2}"${dash}/>`);
      for (const p of series) {
        out.push(`<circle cx="${x(p.rps).toFixed(1)}" cy="${y(p[key]).toFixed(1)}" r="${key === 'p99Ms' ? 3 : 2}" fill="${COLORS[server]}"/>`);
        if (key === 'p99Ms') {
          out.push(`<text x="${(x(p.rps) + 5).toFixed(1)}" y="${(y(p[key]) - 5).toFixed(1)}" fill="${COLORS[server]}">${p.connections}</text>`);
        }
      }
    }
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** Writes STEM.md and one STEM-WORKLOAD.svg per workload into `dir`; returns the Markdown file's path. */
export function writeReport(results: HttpBenchResults, dir: string, stem: string): string {
  for (const w of results.workloads) writeFileSync(join(dir, svgName(stem, w.id)), renderSvg(results, w));
  const markdownPath = join(dir, `${stem}.md`);
  writeFileSync(markdownPath, renderMarkdown(results, stem));
  return markdownPath;
}
