/**
 * What writing a forecast's values as JSON costs on the JavaScript thread: formatFloatArray (the addon's
 * formatFloat32Json) against formatFloat32 per value in JavaScript, the text every GET predict answer carries.
 *
 * Usage: npx tsx bench/float-format.ts [--values N] [--rounds R]
 * Prints, per round, the mean µs per array of N float32 values of everyday magnitude (one value changed before
 * each call, so nothing is cached), both formatters alternating in one process; then the medians of the rounds.
 */
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';

import { formatFloat32, formatFloatArray } from '../src/http/float-format.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const value = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!(value > 0)) throw new Error(`${name} needs a positive number`);
  return value;
}
const VALUES = arg('--values', 12);
const ROUNDS = arg('--rounds', 5);
const CALLS = 200_000;

function javaScript(values: Float32Array): string {
  let out = '[' + formatFloat32(values[0]!);
  for (let i = 1; i < values.length; i++) out += ',' + formatFloat32(values[i]!);
  return out + ']';
}

function timeUs(format: (values: Float32Array) => string, values: Float32Array): number {
  let length = 0;
  const start = performance.now();
  for (let i = 0; i < CALLS; i++) {
    values[i % values.length] = Math.fround(values[i % values.length]! + 0.001);
    length += format(values).length;
  }
  const us = ((performance.now() - start) * 1000) / CALLS;
  if (length === 0) throw new Error('nothing was written');
  return us;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

const values = new Float32Array(VALUES);
for (let i = 0; i < VALUES; i++) values[i] = Math.fround(340 + ((i * 7919) % 100) + 0.123456 * i);
if (formatFloatArray(values) !== javaScript(values)) throw new Error('the two formatters disagree on the bench values');
console.log(`${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores; Node ${process.version}; ${VALUES} values, ${CALLS} calls per round`);
const native: number[] = [];
const script: number[] = [];
for (let round = 1; round <= ROUNDS; round++) {
  native.push(timeUs(formatFloatArray, values));
  script.push(timeUs(javaScript, values));
  console.log(`round ${round}: formatFloatArray (addon) ${native.at(-1)!.toFixed(3)} µs, formatFloat32 per value ${script.at(-1)!.toFixed(3)} µs`);
}
console.log(`median: formatFloatArray (addon) ${median(native).toFixed(3)} µs, formatFloat32 per value ${median(script).toFixed(3)} µs, ${(median(script) / median(native)).toFixed(2)}x`);
