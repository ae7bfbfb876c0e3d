import { afterAll, describe, expect, it } from 'vitest';
import { ForecastdError } from '../../src/errors.js';
import { runtimeInfo } from '../../src/runtime/runtime.js';
import { DEFAULT_IO_POLL_MICROS, startServer, type ForecastdServer } from '../../src/server/start.js';
import { PodDir, writeLinearPod } from './fixtures.js';

/**
 * A server polls for its next request before its thread sleeps (ServerOptions.ioPollMicros, process-wide):
 * 100 µs unless the option or $FORECASTD_IO_POLL_US says otherwise. Requests are answered the same either way.
 */
describe('the server I/O poll', () => {
  const pod = new PodDir('forecastd-io-poll-');
  writeLinearPod(pod, 'lin');
  const servers: ForecastdServer[] = [];
  afterAll(async () => {
    for (const server of servers) await server.close();
    pod.remove();
  });

  async function serve(options: { ioPollMicros?: number } = {}): Promise<ForecastdServer> {
    const server = await startServer({ spicepod: pod.dir, host: '127.0.0.1', port: 0, ...options });
    servers.push(server);
    await server.loaded();
    return server;
  }

  /** What startServer rejects with; a server that starts after all is closed, and fails the test. */
  async function startError(options: { ioPollMicros?: number } = {}): Promise<ForecastdError> {
    const error = await startServer({ spicepod: pod.dir, host: '127.0.0.1', port: 0, ...options }).then(
      async (server) => {
        await server.close();
        return new Error('it started');
      },
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ForecastdError);
    expect((error as ForecastdError).code).toBe('ERR_INVALID_ARGUMENT');
    return error as ForecastdError;
  }

  async function predictTwice(server: ForecastdServer): Promise<void> {
    const bodies: string[] = [];
    for (let i = 0; i < 2; i++) {
      const response = await fetch(server.url + '/v1/models/lin/predict');
      expect(response.status).toBe(200);
      bodies.push(await response.text());
    }
    expect(bodies[0]).toContain('"model_name":"lin"');
    expect(JSON.parse(bodies[0] as string).forecast).toEqual(JSON.parse(bodies[1] as string).forecast);
  }

  it('is 100 µs by default, the option when given, and $FORECASTD_IO_POLL_US without the option', async () => {
    const saved = process.env['FORECASTD_IO_POLL_US'];
    delete process.env['FORECASTD_IO_POLL_US'];
    try {
      await predictTwice(await serve());
      expect(DEFAULT_IO_POLL_MICROS).toBe(100);
      expect(runtimeInfo().ioPollMicros).toBe(DEFAULT_IO_POLL_MICROS);
      await predictTwice(await serve({ ioPollMicros: 0 }));
      expect(runtimeInfo().ioPollMicros).toBe(0);
      process.env['FORECASTD_IO_POLL_US'] = '250';
      await predictTwice(await serve());
      expect(runtimeInfo().ioPollMicros).toBe(250);
    } finally {
      if (saved === undefined) delete process.env['FORECASTD_IO_POLL_US'];
      else process.env['FORECASTD_IO_POLL_US'] = saved;
    }
  });

  it('a $FORECASTD_IO_POLL_US that is not a whole number of microseconds up to 100000 rejects, naming it', async () => {
    const saved = process.env['FORECASTD_IO_POLL_US'];
    try {
      for (const bad of ['-4', 'fast', '100001']) {
        process.env['FORECASTD_IO_POLL_US'] = bad;
        expect((await startError()).message).toBe(`FORECASTD_IO_POLL_US must be an integer from 0 to 100000, got "${bad}"`);
      }
    } finally {
      if (saved === undefined) delete process.env['FORECASTD_IO_POLL_US'];
      else process.env['FORECASTD_IO_POLL_US'] = saved;
    }
  });

  it('a value that is not a whole number of microseconds up to 100000 rejects before listening', async () => {
    for (const bad of [-1, 0.5, 100_001]) {
      expect((await startError({ ioPollMicros: bad })).message).toBe(`ioPollMicros must be an integer from 0 to 100000, got ${bad}`);
    }
  });
});
