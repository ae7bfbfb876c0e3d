/**
 * Renders a saved HTTP benchmark run again (Markdown and SVG beside the JSON), e.g. after a change to the
 * report's layout: tsx bench/http/render.ts bench/results/http-DATE.json
 */
import { readFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { writeReport } from './report.js';
import type { HttpBenchResults } from './results.js';

const file = process.argv[2];
if (!file?.endsWith('.json')) throw new Error('usage: tsx bench/http/render.ts bench/results/http-DATE.json');
const results = JSON.parse(readFileSync(file, 'utf8')) as HttpBenchResults;
const written = writeReport(results, dirname(file), basename(file, '.json'));
process.stdout.write(`${written}\n`);
