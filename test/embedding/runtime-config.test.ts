/**
 * configureRuntime() abuse: wrong types and sizes, a library that is not ONNX Runtime, a second choice that
 * conflicts with the first, and a thread limit hit while the run pool starts (simulated with an LD_PRELOAD
 * shim that makes one pthread_create fail, since root ignores RLIMIT_NPROC).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { describeExit, runCase, scratch } from './harness.js';
import { writeModels, type ModelFiles } from './models.js';

let dir: string;
let remove: () => void;
let models: ModelFiles;

beforeAll(() => {
  ({ dir, remove } = scratch('config'));
  models = writeModels(dir);
});
afterAll(() => remove());

const SHIM = `
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

/* Once FORECASTD_FAIL_PTHREAD_CREATE=k appears in the environment, the k-th pthread_create after that fails
   with EAGAIN, as when a thread limit is reached. */
int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*), void* arg) {
  static int (*real)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*) = NULL;
  static int calls = 0;
  if (real == NULL) real = (int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*))dlsym(RTLD_NEXT, "pthread_create");
  const char* armed = getenv("FORECASTD_FAIL_PTHREAD_CREATE");
  if (armed != NULL && ++calls == atoi(armed)) return EAGAIN;
  return real(thread, attr, start, arg);
}
`;

describe('configureRuntime() abuse', () => {
  it('wrong types, sizes and libraries are clear errors; the first good choice holds', async () => {
    const result = await runCase(
      dir,
      'configure-abuse',
      `
      const { configureRuntime, InferenceSession } = forecastd;
      const outcomes = [];
      const attempt = (options) => {
        try { configureRuntime(options); outcomes.push('ok'); } catch (error) { outcomes.push(error.code); }
      };
      for (const runThreads of [0, -1, 1.5, '2', 1e9, NaN, Infinity, null]) attempt({ runThreads });
      attempt({ libraryPath: '' });
      attempt({ libraryPath: ${JSON.stringify(models.sum)} });
      attempt({ libraryPath: '/nonexistent/libonnxruntime.so' });
      attempt({ runThreads: 2 });
      attempt({ runThreads: 3 });
      attempt({ runThreads: 2 });
      attempt({ libraryPath: '/usr/lib/x86_64-linux-gnu/libc.so.6' });
      const sum = await InferenceSession.load(${JSON.stringify(models.sum)});
      const out = await sum.run({ window: { data: new Float32Array([1, 2, 3, 4]), shape: [1, 4] } });
      report({ outcomes, value: out[0].data[0] });
      `,
    );
    expect(result.signal, describeExit(result)).toBeNull();
    expect(result.code, describeExit(result)).toBe(0);
    expect(result.reports).toEqual([
      {
        outcomes: [
          ...Array(8).fill('ERR_INVALID_ARGUMENT'),
          'ERR_INVALID_ARGUMENT',
          'ERR_RUNTIME_LOAD',
          'ERR_RUNTIME_LOAD',
          'ok',
          'ERR_RUNTIME_LOAD',
          'ok',
          'ERR_RUNTIME_LOAD',
        ],
        value: 10,
      },
    ]);
  });

  it('a thread limit hit while the run pool starts: ERR_RUNTIME_LOAD naming it, and a smaller pool then works', async () => {
    const compiler = spawnSync('cc', ['--version']);
    expect(compiler.error, 'a C compiler (cc) is needed to build the pthread_create shim').toBeUndefined();
    const source = path.join(dir, 'fail-pthread.c');
    const shim = path.join(dir, 'fail-pthread.so');
    writeFileSync(source, SHIM);
    execFileSync('cc', ['-shared', '-fPIC', '-O1', '-o', shim, source, '-ldl']);
    const result = await runCase(
      dir,
      'thread-limit',
      `
      const { configureRuntime, InferenceSession } = forecastd;
      const { loadAddon } = await import(${JSON.stringify(path.resolve('dist/runtime/addon.js'))});
      loadAddon();
      let first;
      process.env.FORECASTD_FAIL_PTHREAD_CREATE = '3';
      try { configureRuntime({ runThreads: 4 }); first = 'ok'; } catch (error) { first = { code: error.code, message: error.message }; }
      delete process.env.FORECASTD_FAIL_PTHREAD_CREATE;
      const info = configureRuntime({ runThreads: 2 });
      const sum = await InferenceSession.load(${JSON.stringify(models.sum)});
      const outs = await Promise.all([1, 2, 3, 4].map((k) => sum.run({ window: { data: new Float32Array([k, k, k, k]), shape: [1, 4] } })));
      report({ first, runThreads: info.runThreads, values: outs.map((o) => o[0].data[0]) });
      `,
      // After any preload already there (test:asan preloads AddressSanitizer, which must come first).
      { env: { LD_PRELOAD: [process.env['LD_PRELOAD'], shim].filter(Boolean).join(' ') } },
    );
    expect(result.signal, describeExit(result)).toBeNull();
    expect(result.code, describeExit(result)).toBe(0);
    const [report] = result.reports as [{ first: { code: string; message: string }; runThreads: number; values: number[] }];
    expect(report.first.code).toBe('ERR_RUNTIME_LOAD');
    expect(report.first.message).toMatch(/cannot start run thread [1-4] of 4: .*runThreads/);
    expect(report.runThreads).toBe(2);
    expect(report.values).toEqual([4, 8, 12, 16]);
  });
});
