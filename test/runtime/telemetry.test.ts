import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../server/fixtures.js';

/**
 * SPEC "Bounded and quiet", quiet: the library turns ONNX Runtime's telemetry off before the runtime loads, and
 * that cannot be undone from the environment; when another module (onnxruntime-node here) loaded the runtime
 * first, configuring forecastd warns through the runtime log. Each case in its own process, on the built
 * library (dist/), as an embedder loads it.
 */

const DIST_INDEX = path.join(REPO, 'dist/index.js');

interface Outcome {
  readonly warnings: string[];
  readonly variable: string | undefined;
}

function configureIn(child: { loadOnnxruntimeNodeFirst: boolean; env?: NodeJS.ProcessEnv }): Outcome {
  const script = `
    ${child.loadOnnxruntimeNodeFirst ? "await import('onnxruntime-node');" : ''}
    const { configureRuntime, setRuntimeLogHandler } = await import(${JSON.stringify(DIST_INDEX)});
    const warnings = [];
    setRuntimeLogHandler((entry) => warnings.push(entry.message));
    configureRuntime();
    console.log(JSON.stringify({ warnings, variable: process.env.ORT_DISABLE_TELEMETRY }));
  `;
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: REPO,
    env: { ...process.env, ...child.env },
    encoding: 'utf8',
  });
  expect(result.stderr).not.toMatch(/Error/);
  expect(result.status).toBe(0);
  return JSON.parse(result.stdout.trim().split('\n').pop()!) as Outcome;
}

describe('ONNX Runtime telemetry', () => {
  it('is off once forecastd configured the runtime, even when the environment asked for it', () => {
    const outcome = configureIn({ loadOnnxruntimeNodeFirst: false, env: { ORT_DISABLE_TELEMETRY: '0' } });
    expect(outcome).toEqual({ warnings: [], variable: '1' });
  });

  it('a runtime loaded before forecastd by another module is warned about, naming the library and the fix', () => {
    const outcome = configureIn({ loadOnnxruntimeNodeFirst: true });
    expect(outcome.warnings).toHaveLength(1);
    expect(outcome.warnings[0]).toMatch(/^ONNX Runtime \(\/.*libonnxruntime\.so\.1\) was already loaded in this process by another module/);
    expect(outcome.warnings[0]).toContain('ORT_DISABLE_TELEMETRY=1');
  });
});
