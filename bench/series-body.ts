/**
 * How long parsing a POST /v1/timeseries/forecast body holds the event loop (`npm run bench:series-body`):
 * for bodies from 64 KiB to just under 4 MiB (series of real-looking values), parsed the way the server does
 * it (parseSeriesBody: on a worker thread above 64 KiB), the event loop's busy time during the parse
 * (performance.eventLoopUtilization) and the longest gap between two event-loop turns, next to the longest
 * gap while idle for as long (what the machine's scheduler alone costs) and to JSON.parse on the event loop.
 *
 *   npm run bench:series-body            (BENCH_ROUNDS=N, default 20 per size)
 */
import { setImmediate as turn, setTimeout as sleep } from 'node:timers/promises';
import { parseSeriesBody } from '../src/http/routes/series-body.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 20);
const SIZES = [64 * 1024, 512 * 1024, 1024 * 1024, 4 * 1024 * 1024 - 4096];

function body(bytes: number): Buffer {
  const inputs: unknown[] = [];
  let size = 60;
  for (let i = 0; size < bytes; i++) {
    const series = Array.from({ length: 200 }, (_, k) => Number((350 + 20 * Math.sin((i + k) / 9) + ((i * 7 + k * 13) % 100) / 97).toFixed(6)));
    const input = { type: 'univariate_time_series', name: `s${i}`, series, frequency: 'W', start_timestamp: '2024-01-06T00:00:00Z' };
    const text = JSON.stringify(input);
    if (size + text.length + 1 > bytes) break;
    inputs.push(input);
    size += text.length + 1;
  }
  return Buffer.from(JSON.stringify({ model: 'm', inputs, options: { horizon: 12 } }));
}

/** The longest gap between event-loop turns while `work` is pending, in ms. */
async function longestStall(work: () => Promise<unknown>): Promise<number> {
  let longest = 0;
  let done = false;
  const watcher = (async () => {
    let last = performance.now();
    while (!done) {
      await turn();
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
    }
  })();
  await work();
  done = true;
  await watcher;
  return longest;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
}

async function main(): Promise<void> {
  console.log(`bench:series-body, ${ROUNDS} rounds per size, Node ${process.version}`);
  console.log(
    '| body | series values | JSON.parse on the loop, ms (median / max) | parseSeriesBody: event-loop busy ms (median / max) | longest gap between turns, ms (median / max) | idle for as long: longest gap, ms (median / max) | parseSeriesBody wall ms (median) |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const size of SIZES) {
    const bytes = body(size);
    const text = bytes.toString();
    const values = (JSON.parse(text) as { inputs: unknown[] }).inputs.length * 200;
    const inline: number[] = [];
    const stalls: number[] = [];
    const idle: number[] = [];
    const busy: number[] = [];
    const walls: number[] = [];
    // parseSeriesBody takes ownership of a large body (its buffer moves to the worker): each call gets a copy.
    await parseSeriesBody(Buffer.from(bytes)); // starts the worker
    for (let r = 0; r < ROUNDS; r++) {
      const t0 = performance.now();
      JSON.parse(bytes.toString());
      inline.push(performance.now() - t0);
      // Busy time with nothing else on the loop (the gap watcher below keeps it busy on purpose).
      const aloneCopy = Buffer.from(bytes);
      const elu = performance.eventLoopUtilization();
      const parsedAlone = await parseSeriesBody(aloneCopy);
      if (!parsedAlone.ok) throw new Error(parsedAlone.message);
      busy.push(performance.eventLoopUtilization(elu).active);
      const stallCopy = Buffer.from(bytes);
      const t1 = performance.now();
      stalls.push(
        await longestStall(async () => {
          const parsed = await parseSeriesBody(stallCopy);
          if (!parsed.ok) throw new Error(parsed.message);
        }),
      );
      const wall = performance.now() - t1;
      walls.push(wall);
      idle.push(await longestStall(() => sleep(wall)));
    }
    const kib = `${Math.round(bytes.byteLength / 1024)} KiB`;
    console.log(
      `| ${kib} | ${values} | ${percentile(inline, 0.5).toFixed(1)} / ${Math.max(...inline).toFixed(1)} | ${percentile(busy, 0.5).toFixed(2)} / ${Math.max(...busy).toFixed(2)} | ${percentile(stalls, 0.5).toFixed(2)} / ${Math.max(...stalls).toFixed(2)} | ${percentile(idle, 0.5).toFixed(2)} / ${Math.max(...idle).toFixed(2)} | ${percentile(walls, 0.5).toFixed(1)} |`,
    );
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
