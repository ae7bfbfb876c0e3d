// The peer: the predict endpoint as a Node user would write it without forecastd, with Fastify and
// onnxruntime-node. It serves the same models, reads the same CSV, takes the same window (the latest `lookback`
// rows) and answers with the same JSON as forecastd, so the benchmark compares the serving, not the work.
//
// Deliberately straightforward: one `session.run` per request (no batching, no cache), the window copied into a
// fresh Float32Array per request, the response built as an object and serialized by Fastify.
//
// POST /v1/timeseries/forecast (KServe's TimeSeries forecast API, univariate, the fields forecastd gives) is
// written the two ways a Node user would: one `session.run` per series ("timeseriesBatching": "per-series"), or
// the request's series stacked into one tensor by hand ("per-request"); no batching across requests either way.
//
// Usage: node bench/peers/node-ort-server.mjs CONFIG.json
//   { "host": "127.0.0.1", "port": 18091,
//     "models": [{ "name": "heavy", "path": "heavy.onnx", "csv": "co2_weekly.csv", "timeColumn": "ts",
//                  "columns": ["co2"], "lookback": 64, "version": "1.0" }],
//     "intraOpThreads": 0,           // 0 (or absent): onnxruntime-node's default
//     "timeseriesBatching": "per-series" }
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';
import * as ort from 'onnxruntime-node';
import { parse } from 'csv-parse/sync';

const configPath = process.argv[2];
if (!configPath) {
  console.error('usage: node bench/peers/node-ort-server.mjs CONFIG.json');
  process.exit(1);
}
const config = JSON.parse(readFileSync(configPath, 'utf8'));

/** The latest `lookback` rows of the CSV, oldest first, row-major [L, V]. */
function loadWindow(csvPath, timeColumn, columns, lookback) {
  const rows = parse(readFileSync(csvPath), { columns: true, skip_empty_lines: true });
  rows.sort((a, b) => Date.parse(a[timeColumn]) - Date.parse(b[timeColumn]));
  const latest = rows.slice(-lookback);
  if (latest.length < lookback) throw new Error(`${csvPath}: ${latest.length} rows, the model needs ${lookback}`);
  const values = [];
  for (const row of latest) {
    for (const column of columns) {
      const value = Number.parseFloat(row[column]);
      if (!Number.isFinite(value)) throw new Error(`${csvPath}: no ${column} value at ${row[timeColumn]}`);
      values.push(value);
    }
  }
  return values;
}

/** Shortest decimal that reads back as the same float32, so the JSON matches forecastd's. */
function float32Json(v) {
  for (let p = 1; p < 9; p++) {
    const d = Number(v.toPrecision(p));
    if (Math.fround(d) === v) return d;
  }
  return Number(v.toPrecision(9));
}

const sessionOptions = config.intraOpThreads ? { intraOpNumThreads: config.intraOpThreads } : {};
const models = new Map();
for (const m of config.models) {
  const session = await ort.InferenceSession.create(m.path, sessionOptions);
  const window = loadWindow(m.csv, m.timeColumn ?? 'ts', m.columns, m.lookback);
  models.set(m.name, { ...m, session, window, inputName: session.inputNames[0], outputName: session.outputNames[0] });
}

async function predict(name) {
  const started = performance.now();
  const model = models.get(name);
  if (!model) return { status: 'BadRequest', error_message: `Model ${name} not found` };
  const input = new ort.Tensor('float32', Float32Array.from(model.window), [1, model.lookback, model.columns.length]);
  const results = await model.session.run({ [model.inputName]: input });
  const prediction = Array.from(results[model.outputName].data, float32Json);
  const body = { status: 'Success', model_name: model.name };
  if (model.version !== undefined) body.model_version = model.version;
  body.lookback = model.lookback;
  body.prediction = prediction;
  body.duration_ms = Math.floor(performance.now() - started);
  return body;
}

const app = Fastify({ logger: false });

app.get('/health', async () => 'ok');
app.get('/v1/ready', async () => 'ready');

app.get('/v1/models/:name/predict', async (request, reply) => {
  const body = await predict(request.params.name);
  if (body.status !== 'Success') reply.code(400);
  return body;
});

app.post('/v1/predict', async (request) => {
  const started = performance.now();
  const items = request.body?.predictions ?? [...models.keys()].map((model_name) => ({ model_name }));
  const predictions = await Promise.all(items.map((item) => predict(item.model_name)));
  return { duration_ms: Math.floor(performance.now() - started), predictions };
});

const STEP_MS = { second: 1e3, minute: 6e4, hour: 36e5, day: 864e5, week: 6048e5, S: 1e3, T: 6e4, H: 36e5, D: 864e5, W: 6048e5 };

app.post('/v1/timeseries/forecast', { bodyLimit: 4 * 1024 * 1024 }, async (request, reply) => {
  const { model: name, inputs, options } = request.body ?? {};
  const model = models.get(name);
  if (!model) {
    reply.code(404);
    return { error: { code: '404', message: `Model ${name} not found`, param: 'model', type: 'model_not_found' } };
  }
  const horizon = options?.horizon;
  const L = model.lookback;
  const windows = inputs.map((input) => Float32Array.from(input.series.slice(-L)));
  let forecasts;
  if (config.timeseriesBatching === 'per-request') {
    const data = new Float32Array(windows.length * L);
    windows.forEach((w, i) => data.set(w, i * L));
    const results = await model.session.run({ [model.inputName]: new ort.Tensor('float32', data, [windows.length, L, 1]) });
    const out = results[model.outputName].data;
    const H = out.length / windows.length;
    forecasts = windows.map((_, i) => out.subarray(i * H, i * H + horizon));
  } else {
    forecasts = await Promise.all(
      windows.map(async (w) => {
        const results = await model.session.run({ [model.inputName]: new ort.Tensor('float32', w, [1, L, 1]) });
        return results[model.outputName].data.subarray(0, horizon);
      }),
    );
  }
  let prompt = 0;
  const outputs = inputs.map((input, i) => {
    prompt += input.series.length;
    const content = { type: input.type, name: input.name, mean_forecast: Array.from(forecasts[i], float32Json), frequency: input.frequency };
    if (input.start_timestamp) {
      const start = Date.parse(input.start_timestamp) + input.series.length * STEP_MS[input.frequency];
      content.start_timestamp = new Date(start).toISOString().replace('.000Z', 'Z');
    }
    return { type: 'time_series_forecast', id: crypto.randomUUID(), status: 'completed', content: [content] };
  });
  const completion = horizon * inputs.length;
  return {
    id: crypto.randomUUID(),
    created_at: Math.floor(Date.now() / 1000),
    status: 'completed',
    model: name,
    outputs,
    usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion },
  };
});

await app.listen({ host: config.host ?? '127.0.0.1', port: config.port });
console.log(`peer listening on ${config.host ?? '127.0.0.1'}:${config.port}`);

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    app.close().then(() => process.exit(0));
  });
}
