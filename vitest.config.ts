import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real servers, real sockets and real ONNX Runtime runs: give them room, but never assert on time.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Tests that load onnxruntime-node directly (as the independent reader of built models) would otherwise
    // start ONNX Runtime's telemetry in the test process: DNS lookups, $HOME/.cache/Microsoft, /tmp/mat-debug-*.
    // The telemetry tests start their own processes with their own environment.
    env: { ORT_DISABLE_TELEMETRY: '1' },
  },
});
