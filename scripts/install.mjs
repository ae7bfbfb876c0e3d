#!/usr/bin/env node
// npm "install" script: use the prebuilt addon for this platform when it loads, else compile it with cmake-js.
// (node-gyp-build's own fallback would run node-gyp, which cannot build this CMake project.)
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));
const target = `${process.platform}-${process.arch}`;

function tryPrebuild() {
  const dir = path.join(root, 'prebuilds', target);
  if (!existsSync(dir)) return false;
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.node'))
    .sort((a, b) => (a === 'forecastd.node' ? -1 : b === 'forecastd.node' ? 1 : a.localeCompare(b)));
  for (const file of files) {
    const full = path.join(dir, file);
    try {
      const addon = require(full);
      if (typeof addon.configure === 'function' && typeof addon.loadSession === 'function') {
        console.log(`forecastd: using the prebuilt addon ${path.relative(root, full)}`);
        return true;
      }
      console.warn(`forecastd: ${full} is not the forecastd addon; building from source`);
    } catch (error) {
      console.warn(`forecastd: the prebuilt addon ${full} does not load here (${error.message}); building from source`);
    }
  }
  return false;
}

function has(command, args) {
  const result = spawnSync(command, args, { stdio: 'ignore' });
  return result.status === 0;
}

function compile() {
  let cmakeJs;
  try {
    cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  } catch {
    return { ok: false, reason: 'cmake-js is not installed (it is a dependency of forecastd; reinstall the package)' };
  }
  console.log(`forecastd: no usable prebuilt addon for ${target}; compiling it with cmake-js`);
  const env = { ...process.env };
  // The running Node's own headers, when installed, spare cmake-js a download (which fails offline).
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  if (!env.npm_config_nodedir && existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) {
    env.npm_config_nodedir = prefix;
  }
  const result = spawnSync(process.execPath, [cmakeJs, 'compile', '--directory', root], { cwd: root, env, stdio: 'inherit' });
  if (result.status === 0) return { ok: true };
  return { ok: false, reason: result.error ? result.error.message : `cmake-js exited with status ${result.status}` };
}

if (!tryPrebuild()) {
  const { ok, reason } = compile();
  if (!ok) {
    const fixes = [];
    if (!has('cmake', ['--version'])) fixes.push('install CMake 3.15 or newer (Debian/Ubuntu: apt-get install cmake)');
    if (!has('c++', ['--version']) && !has('g++', ['--version'])) {
      fixes.push('install a C++17 compiler (Debian/Ubuntu: apt-get install g++)');
    }
    fixes.push('then run "npm rebuild forecastd" in your project (or "npm run build:native" in a checkout)');
    console.error(
      [
        `forecastd: cannot build the native addon for ${target} (Node.js ${process.version}): ${reason}.`,
        'To fix it:',
        ...fixes.map((f) => `  - ${f}`),
        `Or use a platform with a prebuilt binary in prebuilds/ (this package has: ${
          existsSync(path.join(root, 'prebuilds')) ? readdirSync(path.join(root, 'prebuilds')).join(', ') || 'none' : 'none'
        }).`,
      ].join('\n'),
    );
    process.exit(1);
  }
}
