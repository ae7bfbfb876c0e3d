// Embedding forecastd: a worker thread owns the model; the main thread sends it windows and gets forecasts.
// Run from the repository (after npm install): node examples/embedding/forecast-in-worker.mjs
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';

import { BatchingForecaster, ForecastdError, InferenceSession, allocateTensorData, setRuntimeLogHandler } from 'forecastd';

const model = fileURLToPath(new URL('../co2/models/co2_linear.onnx', import.meta.url));

if (isMainThread) {
  const worker = new Worker(new URL(import.meta.url), { workerData: { model } });
  const answers = new Map();
  worker.on('message', ({ id, values, error }) => answers.get(id)?.(error ?? values));
  const forecast = (id, window) =>
    new Promise((resolve) => {
      answers.set(id, resolve);
      worker.postMessage({ id, window }, [window.buffer]); // transferred: the worker owns it now
    });

  const weekly = Float32Array.from({ length: 52 }, (_, i) => 420 + Math.sin((2 * Math.PI * i) / 52));
  const values = await forecast(1, weekly);
  console.log('next weeks:', Array.from(values, (v) => v.toFixed(2)).join(' '));
  console.log('bad window:', await forecast(2, new Float32Array(3)));
  await worker.terminate(); // safe even with runs in flight
} else {
  // ONNX Runtime's warnings go wherever the embedder logs (here: stderr, prefixed).
  setRuntimeLogHandler((entry) => console.error(`[onnxruntime ${entry.level}] ${entry.message}`));
  const session = await InferenceSession.load(workerData.model);
  const forecaster = new BatchingForecaster(session, { maxBatchSize: 64 });
  parentPort.on('message', async ({ id, window }) => {
    try {
      const { values } = await forecaster.predict(window);
      parentPort.postMessage({ id, values: Float32Array.from(values) });
    } catch (error) {
      const code = error instanceof ForecastdError ? error.code : 'ERR_UNKNOWN';
      parentPort.postMessage({ id, error: `${code}${error.ortCode ? ` (${error.ortCode})` : ''}: ${error.message}` });
    }
  });
  // A direct run on addon-owned memory: run() holds it instead of copying.
  const probe = allocateTensorData('float32', 52);
  await session.run({ [session.inputs[0].name]: { data: probe, shape: [1, 52, 1] } });
}
