import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ForecastdError } from '../../src/errors.js';
import { startServer, type ForecastdServer } from '../../src/server/start.js';
import { freePort } from '../helpers/sockets.js';
import { PodDir, writeLinearPod } from './fixtures.js';

/**
 * forecastd listens on its address alone: a second server started on an address that is already held fails
 * at once, instead of silently sharing the connections with whoever holds it.
 */

/** The rejection of `promise`; a server that starts after all is closed, and fails the test. */
async function rejection(promise: Promise<ForecastdServer>): Promise<unknown> {
  try {
    const started = await promise;
    await started.close();
  } catch (error) {
    return error;
  }
  throw new Error(`it started listening`);
}

describe('the listen address', () => {
  const pod = new PodDir('forecastd-listen-');
  let first: ForecastdServer;

  beforeAll(async () => {
    writeLinearPod(pod, 'listen');
    // A port given explicitly: on port 0, uWebSockets.js never shares, so only this shows the old behaviour.
    first = await startServer({ spicepod: pod.dir, host: '127.0.0.1', port: await freePort() });
    await first.loaded();
  });
  afterAll(async () => {
    await first?.close();
    pod.remove();
  });

  it('a second server on an address forecastd holds rejects with ERR_ADDRESS_IN_USE; the first still serves', async () => {
    const error = await rejection(startServer({ spicepod: pod.dir, host: '127.0.0.1', port: first.port }));
    expect(error).toBeInstanceOf(ForecastdError);
    expect((error as ForecastdError).code).toBe('ERR_ADDRESS_IN_USE');
    expect((error as ForecastdError).message).toBe(`127.0.0.1:${first.port} is already in use (another process listens there)`);
    const response = await fetch(first.url + '/v1/models/lin/predict');
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('"model_name":"lin"');
  });

  it('an address a plain Node.js server holds rejects with ERR_ADDRESS_IN_USE', async () => {
    const holder = net.createServer((socket) => socket.end());
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as net.AddressInfo).port;
    try {
      const error = await rejection(startServer({ spicepod: pod.dir, host: '127.0.0.1', port }));
      expect(error).toBeInstanceOf(ForecastdError);
      expect((error as ForecastdError).code).toBe('ERR_ADDRESS_IN_USE');
      expect((error as ForecastdError).message).toBe(`127.0.0.1:${port} is already in use (another process listens there)`);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });

  it('a host that is not an address of this machine rejects with ERR_LISTEN saying so', async () => {
    // 192.0.2.0/24 is reserved for documentation (RFC 5737): no machine has it.
    const error = await rejection(startServer({ spicepod: pod.dir, host: '192.0.2.7', port: first.port }));
    expect(error).toBeInstanceOf(ForecastdError);
    expect((error as ForecastdError).code).toBe('ERR_LISTEN');
    expect((error as ForecastdError).message).toBe(`cannot listen on 192.0.2.7:${first.port}: 192.0.2.7 is not an address of this machine`);
  });
});
