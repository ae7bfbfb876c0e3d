#!/usr/bin/env node
// Builds a variant of the addon into build/<name>/ with extra CMake definitions, leaving the normal build alone:
//   node scripts/build-variant.mjs asan FORECASTD_SANITIZE=ON        (npm run test:asan)
//   node scripts/build-variant.mjs electron FORECASTD_NO_EXTERNAL_BUFFERS=ON
// Prints the path of the built forecastd.node on its last line; load it with FORECASTD_ADDON=<that path>.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const [name, ...definitions] = process.argv.slice(2);
if (name === undefined || !/^[a-z0-9-]+$/.test(name) || definitions.some((d) => !/^[A-Z0-9_]+=[A-Za-z0-9_.-]+$/.test(d))) {
  console.error('usage: build-variant.mjs NAME [CMAKE_VAR=VALUE ...]');
  process.exit(2);
}
const out = path.join(root, 'build', name);
const cmakeJs = createRequire(import.meta.url).resolve('cmake-js/bin/cmake-js');
const env = { ...process.env };
// The running Node's own headers, when installed, spare cmake-js a download (which fails offline).
const prefix = path.resolve(path.dirname(process.execPath), '..');
if (!env.npm_config_nodedir && existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) env.npm_config_nodedir = prefix;
const args = [cmakeJs, 'compile', '--directory', root, '--out', out, ...definitions.map((d) => `--CD${d}`)];
const result = spawnSync(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'inherit', 'inherit'] });
if (result.status !== 0) {
  console.error(`build-variant: cmake-js failed (${result.error?.message ?? `status ${String(result.status)}`})`);
  process.exit(1);
}
const binary = path.join(out, 'Release', 'forecastd.node');
if (!existsSync(binary)) {
  console.error(`build-variant: ${binary} was not produced`);
  process.exit(1);
}
console.log(binary);
