/**
 * The published package: `npm pack`, then install the tarball into a fresh project on a PATH without cmake or
 * a compiler, and run a model there. The prebuilt addon must be picked up with no compile step.
 * Needs the npm cache (or registry) for forecastd's dependencies; slow (about a minute), so it runs alone.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { packageRoot } from '../../src/runtime/addon.js';
import { linearModel } from '../../tools/onnx-builder.js';

const root = packageRoot();
const prebuild = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'forecastd.node');
const work = mkdtempSync(path.join(os.tmpdir(), 'forecastd-pack-'));
const npmCli = realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim());

afterAll(() => rmSync(work, { recursive: true, force: true }));

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): string {
  const result = spawnSync(command, args, { cwd, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.status}):\n${output}`);
  return output;
}

describe('npm package', () => {
  it('installs from its tarball with the prebuilt addon and no compiler, and runs a model', { timeout: 600_000 }, () => {
    if (!existsSync(prebuild)) {
      // `npm run prebuild` (prebuildify) moves build/Release/forecastd.node while other test files may be loading
      // it; place a copy where prebuildify would put it instead.
      mkdirSync(path.dirname(prebuild), { recursive: true });
      copyFileSync(path.join(root, 'build', 'Release', 'forecastd.node'), prebuild);
    }
    expect(existsSync(prebuild)).toBe(true);

    const packDir = path.join(work, 'pack');
    mkdirSync(packDir);
    // --ignore-scripts: `prepare` already ran (install, `npm test`); running it again would rewrite dist/ while
    // other test files spawn dist/cli.js.
    run(process.execPath, [npmCli, 'pack', '--ignore-scripts', '--pack-destination', packDir], root);
    const tarball = readdirSync(packDir).find((f) => f.endsWith('.tgz'));
    expect(tarball).toBeDefined();
    const listing = run('tar', ['-tzf', path.join(packDir, tarball as string)], packDir);
    expect(listing).toContain('package/prebuilds/linux-x64/forecastd.node');
    expect(listing).toContain('package/dist/runtime/session.js');
    expect(listing).toContain('package/native/addon.cc');
    expect(listing).not.toContain('package/build/');

    // A PATH holding node and sh alone (npm runs scripts with sh): no cmake, no c++, so compiling would fail.
    const bin = path.join(work, 'bin');
    mkdirSync(bin);
    symlinkSync(process.execPath, path.join(bin, 'node'));
    symlinkSync(realpathSync('/bin/sh'), path.join(bin, 'sh'));
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: bin };
    for (const key of Object.keys(env)) if (key.toLowerCase().startsWith('npm_')) delete env[key];
    expect(spawnSync('cmake', ['--version'], { env }).error).toBeDefined();

    const app = path.join(work, 'app');
    mkdirSync(app);
    // onnxruntime-node's postinstall downloads CUDA libraries from outside the npm registry: the app denies it
    // as this repository does (allowScripts; npm 11.19 skips a denied package's scripts) and allows forecastd's.
    writeFileSync(
      path.join(app, 'package.json'),
      JSON.stringify({ name: 'forecastd-consumer', private: true, type: 'module', allowScripts: { 'onnxruntime-node': false, forecastd: true } }),
    );
    const installLog = run(
      process.execPath,
      [npmCli, 'install', '--foreground-scripts', '--prefer-offline', '--no-audit', '--no-fund', path.join(packDir, tarball as string)],
      app,
      env,
    );
    expect(installLog).toContain('forecastd: using the prebuilt addon prebuilds/linux-x64/forecastd.node');
    const installed = path.join(app, 'node_modules', 'forecastd');
    expect(existsSync(path.join(installed, 'build'))).toBe(false);

    writeFileSync(path.join(app, 'model.onnx'), linearModel({ lookback: 3, horizon: 1, weights: [1, 2, 3], bias: 0.5, rank: 2 }));
    const script = `
      import { InferenceSession } from ${JSON.stringify(path.join(installed, 'dist', 'runtime', 'session.js'))};
      import { runtimeInfo } from ${JSON.stringify(path.join(installed, 'dist', 'runtime', 'runtime.js'))};
      const session = await InferenceSession.load('model.onnx');
      const [out] = await session.run({ window: { data: new Float32Array([1, 1, 2]), shape: [1, 3] } });
      console.log(JSON.stringify({ forecast: Array.from(out.data), library: runtimeInfo().libraryPath }));
    `;
    writeFileSync(path.join(app, 'check.mjs'), script);
    const result = JSON.parse(run(process.execPath, ['check.mjs'], app, env).trim().split('\n').pop() as string) as {
      forecast: number[];
      library: string;
    };
    expect(result.forecast).toEqual([9.5]);
    expect(result.library).toBe(
      path.join(app, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64', 'libonnxruntime.so.1'),
    );
  });
});
