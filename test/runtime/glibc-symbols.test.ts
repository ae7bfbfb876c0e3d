/**
 * One Linux x86-64 build of the addon must load on every glibc from 2.28 on, whichever glibc built it: the
 * prebuild in the npm package is made once and installed everywhere. What the dynamic loader will demand is
 * written in the binary's dynamic symbol table, so this reads it with binutils' objdump (as `objdump -T` would
 * show a user) instead of trusting the build flags: no glibc symbol version newer than GLIBC_2.28, no
 * libstdc++ (GCC 12's needs glibc 2.34+ symbols of its own) and no symbol left unresolved by the link tricks.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { packageRoot } from '../../src/runtime/addon.js';

const OLDEST_GLIBC = [2, 28];
/** glibc's own libraries (libdl and libpthread are stubs from 2.34 on) and GCC's, which Node itself needs. */
const EVERY_GLIBC_SYSTEM_HAS = new Set(['ld-linux-x86-64.so.2', 'libc.so.6', 'libdl.so.2', 'libgcc_s.so.1', 'libm.so.6', 'libpthread.so.0']);

const root = packageRoot();
const binaries = [
  path.join(root, 'build', 'Release', 'forecastd.node'),
  path.join(root, 'prebuilds', 'linux-x64', 'forecastd.node'),
].filter((file) => existsSync(file));

interface DynamicSymbol {
  readonly name: string;
  readonly version: string;
  readonly undefined: boolean;
}

function objdump(args: string[]): string {
  try {
    return execFileSync('objdump', args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  } catch (error) {
    throw new Error(`objdump ${args.join(' ')} failed (install binutils): ${(error as Error).message}`);
  }
}

/** `objdump -T` lines: address, flags, section, size, then "(VERSION) name" or "Base name". */
function dynamicSymbols(file: string): DynamicSymbol[] {
  const symbols: DynamicSymbol[] = [];
  for (const line of objdump(['-T', file]).split('\n')) {
    const match = /^[0-9a-f]{16}\s.*?\s(\*UND\*|\S+)\s+[0-9a-f]{16}\s+(?:\(([^)]+)\)|(\S+))?\s+(\S+)$/.exec(line);
    if (match === null) continue;
    symbols.push({ name: match[4] as string, version: match[2] ?? match[3] ?? '', undefined: match[1] === '*UND*' });
  }
  return symbols;
}

function glibcVersion(version: string): number[] | null {
  const match = /^GLIBC_(\d+(?:\.\d+)*)$/.exec(version);
  return match === null ? null : (match[1] as string).split('.').map(Number);
}

function newerThan(version: number[], floor: number[]): boolean {
  for (let i = 0; i < Math.max(version.length, floor.length); i++) {
    const a = version[i] ?? 0;
    const b = floor[i] ?? 0;
    if (a !== b) return a > b;
  }
  return false;
}

describe.runIf(process.platform === 'linux' && process.arch === 'x64')('the addon binary on Linux x86-64', () => {
  it('has been built', () => {
    expect(binaries.length).toBeGreaterThan(0);
  });

  for (const file of binaries) {
    const name = path.relative(root, file);

    it(`${name} asks for no glibc symbol version newer than GLIBC_2.28`, () => {
      const symbols = dynamicSymbols(file);
      // The table was read: the addon calls into glibc and Node-API.
      expect(symbols.some((s) => s.undefined && glibcVersion(s.version) !== null)).toBe(true);
      expect(symbols.some((s) => s.name.startsWith('napi_') && s.undefined)).toBe(true);
      const tooNew = symbols
        .filter((s) => {
          const version = glibcVersion(s.version);
          return version !== null && newerThan(version, OLDEST_GLIBC);
        })
        .map((s) => `${s.name}@${s.version}`);
      expect(tooNew).toEqual([]);
    });

    it(`${name} carries its own C++ runtime and needs only libraries every glibc system has`, () => {
      const symbols = dynamicSymbols(file);
      expect(symbols.filter((s) => /^(GLIBCXX|CXXABI)_/.test(s.version)).map((s) => `${s.name}@${s.version}`)).toEqual([]);
      const needed = objdump(['-p', file])
        .split('\n')
        .map((line) => /^\s*NEEDED\s+(\S+)$/.exec(line)?.[1])
        .filter((lib): lib is string => lib !== undefined)
        .sort();
      expect(needed).toContain('libc.so.6');
      expect(needed.filter((lib) => !EVERY_GLIBC_SYSTEM_HAS.has(lib))).toEqual([]);
      // A wrapper the link asked for but the build left out would be an unresolved symbol at load time.
      expect(symbols.filter((s) => s.undefined && s.name.startsWith('__wrap_')).map((s) => s.name)).toEqual([]);
    });
  }
});
