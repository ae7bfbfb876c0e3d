import { readFile, readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';

/**
 * Dependencies point down: datasets are a lower layer than the spicepod, the server and HTTP, and never
 * import them (the spicepod maps its config into datasets' own types).
 */

const DATASETS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/datasets');
const HIGHER = ['spicepod', 'server', 'http', 'cli'];

describe('src/datasets layering', () => {
  test('no module of src/datasets imports the spicepod, the server or HTTP', async () => {
    const files = (await readdir(DATASETS)).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(0);
    const upward: string[] = [];
    for (const file of files) {
      const text = await readFile(path.join(DATASETS, file), 'utf8');
      for (const match of text.matchAll(/\bfrom\s+['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g)) {
        const target = match[1] ?? match[2] ?? '';
        if (!target.startsWith('.')) continue;
        const resolved = path.relative(path.dirname(DATASETS), path.resolve(DATASETS, target));
        const top = resolved.split(path.sep)[0]?.replace(/\.js$/, '') ?? '';
        if (HIGHER.includes(top)) upward.push(`${file} imports ${target}`);
      }
    }
    expect(upward).toEqual([]);
  });

  test('the modules of src/datasets import one another without a cycle (type imports included)', async () => {
    const files = (await readdir(DATASETS)).filter((f) => f.endsWith('.ts'));
    const imports = new Map<string, string[]>();
    for (const file of files) {
      const text = await readFile(path.join(DATASETS, file), 'utf8');
      const local = [...text.matchAll(/\bfrom\s+'\.\/([\w-]+)\.js'/g)].map((m) => `${m[1]}.ts`);
      imports.set(file, local);
    }
    const cycles: string[] = [];
    const visit = (file: string, path: readonly string[]): void => {
      for (const next of imports.get(file) ?? []) {
        const at = path.indexOf(next);
        if (at >= 0) cycles.push([...path.slice(at), next].join(' -> '));
        else visit(next, [...path, next]);
      }
    };
    for (const file of files) visit(file, [file]);
    expect(cycles).toEqual([]);
  });
});
