/**
 * Three replicas over one PostgreSQL table behind nginx running deploy/nginx/forecastd.conf. Open-source
 * nginx only learns that a replica is gone when a request to it fails (passive checks) and never asks
 * /v1/ready, so a rolling restart takes each replica out of the upstream (`down` + reload) first, as its
 * documentation has it for planned maintenance; a replica killed without warning costs a resent request
 * per connection that meets it. Each test prints its numbers as one `[scale-out]` line.
 */
import { describe, expect, it } from 'vitest';
import { probeTestPostgres } from '../helpers/postgres.js';
import { httpGet, probeBalancer, waitFor, type Balancer } from './harness.js';
import { balancedCluster, expectNoFailures, rollNumbers, round } from './balanced.js';
import { answerKey } from './load.js';

const postgres = await probeTestPostgres();
const nginx = probeBalancer('nginx');

/** Access-log lines `STATUS "UPSTREAM_STATUSES" "UPSTREAM_ADDRS" TIME "REQUEST"` from line `from` on. */
function upstreamTries(balancer: Balancer, from: number): { total: number; resent: number; resentSeconds: number[] } {
  const lines = balancer.requestLog().slice(from);
  const resent = lines.filter((l) => /^\d+ "[^"]*,/.exec(l) !== null);
  return { total: lines.length, resent: resent.length, resentSeconds: resent.map((l) => Number(/^\S+ "[^"]*" "[^"]*" (\S+)/.exec(l)?.[1])) };
}

describe.skipIf(!postgres.available || !nginx)('scale-out behind nginx (3 replicas, one PostgreSQL table)', () => {
  const setup = balancedCluster({ kind: 'nginx', seeds: [41, 42] });
  const { accepted } = setup;

  it('passes the client X-Request-ID through and gives one to requests without', async () => {
    const given = await httpGet(`${setup.balancer.url}/v1/models/alpha/predict`, { 'x-request-id': 'trace-43' });
    expect(given.status).toBe(200);
    expect(given.headers['x-request-id']).toBe('trace-43');
    const body = JSON.parse(given.body) as { model_version: string; prediction: number[] };
    expect(accepted.get('alpha')).toContain(answerKey(body.model_version, body.prediction));
    const fresh = await httpGet(`${setup.balancer.url}/health`);
    expect(fresh.status).toBe(200);
    expect(fresh.body).toBe('ok');
    // nginx's $request_id: 32 hex digits.
    expect(fresh.headers['x-request-id']).toMatch(/^[0-9a-f]{32}$/);
  });

  it('restarts every replica in turn under load with no failed request (down + reload around each)', async () => {
    const logFrom = setup.balancer.requestLog().length;
    const run = setup.load();
    await new Promise((r) => setTimeout(r, 3_000));
    const rollStart = run.now();
    const restarts: { replica: string; exitCode: number | null; outOfRotationMs: number }[] = [];
    for (const [i, replica] of setup.cluster.replicas.entries()) {
      const t0 = run.now();
      await setup.balancer.reconfigure(setup.cluster.replicas, new Set([i]));
      const exitCode = await replica.stop('SIGTERM');
      replica.start();
      await replica.ready();
      await setup.balancer.reconfigure(setup.cluster.replicas, new Set());
      restarts.push({ replica: replica.name, exitCode, outOfRotationMs: round(run.now() - t0) });
    }
    const rollEnd = run.now();
    await new Promise((r) => setTimeout(r, 1_000));
    await run.stop();
    expectNoFailures(run);
    expect(restarts.map((r) => r.exitCode)).toEqual([0, 0, 0]);
    // Every replica is back in the upstream and serving through nginx.
    const tries = upstreamTries(setup.balancer, logFrom);
    const ports = new Set(setup.balancer.requestLog().slice(-200).map((l) => /"127\.0\.0\.1:(\d+)"/.exec(l)?.[1]));
    expect([...setup.cluster.replicas.map((r) => String(r.port))].every((p) => ports.has(p))).toBe(true);
    setup.report('rolling-restart', {
      ...rollNumbers(run, rollStart, rollEnd),
      resentByNginx: tries.resent,
      restarts,
    });
  });

  it('keeps answering when a replica is killed hard under load; passive checks resend what met it', async () => {
    const logFrom = setup.balancer.requestLog().length;
    const run = setup.load();
    await new Promise((r) => setTimeout(r, 2_000));
    const victim = setup.cluster.replicas[2]!;
    const killedAt = run.now();
    await victim.stop('SIGKILL');
    // Long enough for nginx to retry the dead replica after fail_timeout (5 s): each retry costs a resend.
    await new Promise((r) => setTimeout(r, 7_000));
    await run.stop();
    expectNoFailures(run);
    const tries = upstreamTries(setup.balancer, logFrom);
    // Requests met the dead replica and were resent to another one.
    expect(tries.resent).toBeGreaterThan(0);
    setup.report('hard-kill', {
      requests: run.requests,
      failed: run.failures.length,
      clientResends: run.clientResends,
      resentByNginx: tries.resent,
      resentMaxSeconds: Math.max(...tries.resentSeconds),
      p99BeforeMs: round(run.percentile(99, 1_000, killedAt)),
      p99AfterMs: round(run.percentile(99, killedAt, run.now())),
    });
    victim.start();
    await victim.ready();
    await waitFor('nginx sending to the restarted replica again', async () => {
      await httpGet(`${setup.balancer.url}/health`);
      return setup.balancer.requestLog().slice(-50).some((l) => l.startsWith('200') && l.includes(`"127.0.0.1:${victim.port}"`)) ? true : undefined;
    });
  });
});
