/**
 * The README and the pages under docs/ show what the project does: every link leads somewhere, every curl
 * shown runs against the real server on the bundled example and prints what the page says, the pods shown
 * load, and the commands shown take the options the CLI has.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSpicepod } from '../../src/spicepod/load.js';
import { CLI, startCli, type CliProcess } from '../helpers/cli.js';
import { REPO } from '../server/fixtures.js';

const run = promisify(execFile);

const PAGES = ['README.md', ...readdirSync(path.join(REPO, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

const read = (page: string): string => readFileSync(path.join(REPO, page), 'utf8');

/** Markdown text outside fenced code blocks. */
function prose(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes, repeats numbered. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const [, text] of prose(markdown).matchAll(/^#{1,6} +(.+?) *#*$/gm)) {
    const base = text!
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** The fenced blocks of a language ('' for none) in a page, with their text. */
function blocks(markdown: string, lang: string): string[] {
  const found: string[] = [];
  let open: { lang: string; lines: string[] } | undefined;
  for (const line of markdown.split('\n')) {
    if (open === undefined) {
      const fence = /^```(\S*)$/.exec(line);
      if (fence !== null) open = { lang: fence[1]!, lines: [] };
    } else if (line === '```') {
      if (open.lang === lang) found.push(open.lines.map((l) => `${l}\n`).join(''));
      open = undefined;
    } else {
      open.lines.push(line);
    }
  }
  return found;
}

interface ShownCall {
  readonly page: string;
  readonly command: string;
  readonly output: string;
}

/** Every `$ curl ...` of a console block and the lines printed under it, up to a blank line or the next `$`. */
function shownCurls(page: string): ShownCall[] {
  const calls: ShownCall[] = [];
  for (const block of blocks(read(page), 'console')) {
    const lines = block.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const command = /^\$ (curl .*)$/.exec(lines[i]!)?.[1];
      if (command === undefined) continue;
      const output: string[] = [];
      for (let j = i + 1; j < lines.length && lines[j] !== '' && !lines[j]!.startsWith('$ '); j++) output.push(lines[j]!);
      calls.push({ page, command, output: output.join('\n') });
    }
  }
  return calls;
}

/** What varies from run to run in an answer: times, durations and generated ids. */
function steady(text: string): string {
  return text
    // Evaluation metrics are sums over runs whose sizes follow measured run times, so the order of the additions,
    // and with it the last bits of a double, can differ from run to run: compare them to 12 significant digits.
    .replace(/-?\d+\.\d{12,}(?:e[-+]?\d+)?/g, (n) => Number(n).toPrecision(12))
    .replace(/"duration_ms":\d+/g, '"duration_ms":0')
    .replace(/"refreshed_at":"[^"]*"/g, '"refreshed_at":"…"')
    .replace(/"created_at":\d+/g, '"created_at":0')
    .replace(/"id":"[0-9a-f-]{36}"/g, '"id":"…"');
}

/** Runs a curl line as a shell would, against `port`; a status other than 200 is printed as the page does. */
async function curl(command: string, port: number): Promise<string> {
  const local = command.replace(/\b(localhost|127\.0\.0\.1):8090\b/g, `127.0.0.1:${port}`);
  const { stdout } = await run('sh', ['-c', `${local} --silent --show-error --write-out '\\n%{http_code}'`], { cwd: REPO });
  const cut = stdout.lastIndexOf('\n');
  const body = stdout.slice(0, cut);
  const status = stdout.slice(cut + 1);
  return status === '200' ? body : `${body}\n(HTTP ${status})`;
}

describe('README and docs/', () => {
  it('the README is a short front door (at most 300 lines) that links every page under docs/', () => {
    const readme = read('README.md');
    expect(readme.split('\n').length).toBeLessThanOrEqual(300);
    for (const page of PAGES.filter((p) => p.startsWith('docs/') && p !== 'docs/README.md')) {
      expect(readme, page).toContain(`](${page})`);
    }
    expect(readme).toContain('[Evaluation](docs/evaluation.md)');
    expect(read('docs/README.md')).toContain('[Evaluation](evaluation.md)');
  });

  it('every page under docs/ opens with a title and what it covers', () => {
    for (const page of PAGES.filter((p) => p.startsWith('docs/'))) {
      expect(read(page), page).toMatch(/^# .+\n\n[A-Za-z`[(].{40,}/);
    }
  });

  it('every relative link names a file that exists, and every #anchor a heading there', () => {
    const broken: string[] = [];
    for (const page of PAGES) {
      const text = prose(read(page));
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/i.test(target!)) continue;
        const [file, anchor] = target!.split('#') as [string, string | undefined];
        const resolved = file === '' ? page : path.posix.normalize(path.posix.join(path.posix.dirname(page), file));
        if (!existsSync(path.join(REPO, resolved))) {
          broken.push(`${page}: ${target} (no ${resolved})`);
          continue;
        }
        if (anchor !== undefined && resolved.endsWith('.md') && !anchors(read(resolved)).has(anchor)) {
          broken.push(`${page}: ${target} (no heading #${anchor} in ${resolved})`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  it("the README's pod is the bundled example's spicepod.yaml, and the Configuration page's pod loads without a warning", () => {
    const readmePod = blocks(read('README.md'), 'yaml');
    expect(readmePod).toEqual([read('examples/co2/spicepod.yaml')]);

    const [annotated] = blocks(read('docs/configuration.md'), 'yaml');
    expect(annotated).toBeDefined();
    const pod = parseSpicepod(annotated!, path.join(REPO, 'examples/co2/spicepod.yaml'), { FORECASTD_API_KEY: 'key' });
    expect(pod.warnings).toEqual([]);
    expect(pod.datasets.map((d) => d.name)).toEqual(['co2_weekly']);
    expect(pod.models.map((m) => m.name)).toEqual(['co2_linear']);
  });

  it("the Configuration page's synopsis names only options that `forecastd --help` lists", async () => {
    const { stdout } = await run(process.execPath, [CLI, '--help'], { cwd: REPO });
    const [synopsis] = blocks(read('docs/configuration.md'), '').filter((b) => b.startsWith('forecastd [PATH]'));
    expect(synopsis).toBeDefined();
    const flags = [...synopsis!.matchAll(/--[a-z-]+/g)].map((m) => m[0]);
    expect(flags.length).toBeGreaterThan(5);
    for (const flag of flags) expect(stdout, flag).toMatch(new RegExp(`^ +${flag}\\b`, 'm'));
  });

  it('the image the README runs is the one deploy/Dockerfile builds: its pod folder and port', () => {
    const dockerfile = read('deploy/Dockerfile');
    const readme = read('README.md');
    const [build, runLine] = blocks(readme, 'sh').find((b) => b.startsWith('docker build'))!.trim().split('\n');
    expect(build).toBe('docker build -f deploy/Dockerfile -t forecastd:0.1.0 .');
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)![1]!) as string[];
    const port = /:(\d+)$/.exec(cmd[cmd.indexOf('--http') + 1]!)![1];
    expect(runLine).toContain(`-p ${port}:${port}`);
    expect(runLine).toContain(`:${cmd[0]}:ro`);
    expect(runLine).toMatch(/forecastd:0\.1\.0$/);
  });
});

describe('the curls shown, against the real server on examples/co2', () => {
  const calls = PAGES.flatMap(shownCurls);
  let cli: CliProcess;
  let port = 0;

  beforeAll(async () => {
    expect(existsSync(CLI), 'dist/cli.js is missing: run npm run build:ts (npm test does)').toBe(true);
    cli = startCli(['examples/co2', '--http', '127.0.0.1:0']);
    const url = (JSON.parse(await cli.line(/forecastd listening on/)) as { url: string }).url;
    port = Number(new URL(url).port);
    // The pages show the example served: wait until startup has loaded every model and dataset.
    for (;;) {
      const answer = await fetch(`http://127.0.0.1:${port}/v1/ready`);
      if (answer.status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // The listings show each model's backtest (`mae`, `skill`), which finishes after readiness: wait for it.
    for (;;) {
      const models = (await (await fetch(`http://127.0.0.1:${port}/v1/models?status=true`)).json()) as { mae: number | null }[];
      if (models.every((m) => m.mae !== null)) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }, 60_000);
  afterAll(async () => {
    cli?.child.kill('SIGTERM');
    await cli?.exit;
  });

  it('the README shows the seed\'s calls, and the HTTP API page the KServe route', () => {
    const where = new Set(calls.map((c) => c.page));
    expect(where).toContain('README.md');
    expect(where).toContain('docs/http-api.md');
    expect(calls.filter((c) => c.page === 'README.md').length).toBeGreaterThanOrEqual(5);
  });

  it.each(calls.map((c) => [`${c.page}: $ ${c.command}`, c] as const))('%s', async (_name, call) => {
    expect(call.output, 'the page shows no output under the command').not.toBe('');
    expect(steady(await curl(call.command, port))).toBe(steady(call.output));
  });
});
