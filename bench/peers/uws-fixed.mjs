// The HTTP ceiling: uWebSockets.js answering each route with a fixed JSON body, with no inference and no
// serialization. Bodies captured from real prediction responses make its answers the same size on the wire.
//
// Usage: node bench/peers/uws-fixed.mjs CONFIG.json
//   { "host": "127.0.0.1", "port": 18092,
//     "routes": [{ "method": "GET", "path": "/v1/models/heavy/predict", "bodyFile": "heavy.json" },
//                { "method": "POST", "path": "/v1/predict", "bodyFile": "post.json" }] }
// /health and /v1/ready answer as forecastd's do. A POST reads the whole request body before answering.
import { readFileSync } from 'node:fs';
import uWS from 'uWebSockets.js';

const configPath = process.argv[2];
if (!configPath) {
  console.error('usage: node bench/peers/uws-fixed.mjs CONFIG.json');
  process.exit(1);
}
const config = JSON.parse(readFileSync(configPath, 'utf8'));
if (!String(uWS.App).includes('[native code]')) {
  console.error('uWebSockets.js fell back to its JavaScript imitation: this ceiling would be meaningless');
  process.exit(1);
}

const app = uWS.App()
  .get('/health', (res) => res.end('ok'))
  .get('/v1/ready', (res) => res.end('ready'));

for (const route of config.routes) {
  const body = readFileSync(route.bodyFile);
  if (route.method === 'GET') {
    app.get(route.path, (res) => res.writeHeader('Content-Type', 'application/json').end(body));
  } else if (route.method === 'POST') {
    app.post(route.path, (res) => {
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });
      res.onData((_chunk, isLast) => {
        if (isLast && !aborted) res.cork(() => res.writeHeader('Content-Type', 'application/json').end(body));
      });
    });
  } else {
    throw new Error(`unsupported method ${route.method}`);
  }
}
app.any('/*', (res) => res.writeStatus('404 Not Found').end());

const host = config.host ?? '127.0.0.1';
app.listen(host, config.port, (socket) => {
  if (!socket) {
    console.error(`cannot listen on ${host}:${config.port}`);
    process.exit(1);
  }
  console.log(`fixed-body server listening on ${host}:${config.port}`);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      uWS.us_listen_socket_close(socket);
      process.exit(0);
    });
  }
});
