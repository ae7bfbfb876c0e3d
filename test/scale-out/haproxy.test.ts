/**
 * Three replicas over one PostgreSQL table behind HAProxy running deploy/haproxy/haproxy.cfg: a rolling
 * restart and a rolling model update under a closed-loop load with no failed request and every answer a
 * correct prediction, convergence after the table changes, and a replica killed hard. Each test prints its
 * numbers (times, p99, retries) as one `[scale-out]` line; nothing asserts on time.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { probeTestPostgres } from '../helpers/postgres.js';
import { REPO } from '../server/fixtures.js';
import { httpGet, probeBalancer, waitFor, type Balancer } from './harness.js';
import { modelFile, spicepodYaml } from './cluster.js';
import { balancedCluster, expectNoFailures, rollNumbers, round } from './balanced.js';

const postgres = await probeTestPostgres();
const haproxy = probeBalancer('haproxy');

/**
 * The replicas run with the shipped systemd unit's `--shutdown-delay` (test/deploy/manifests.test.ts checks
 * it against deploy/haproxy/haproxy.cfg's check timing): on SIGTERM a replica answers /v1/ready with 503 and
 * keeps its socket open until HAProxy has marked it DOWN.
 */
function shippedShutdownDelay(): string {
  const unit = readFileSync(path.join(REPO, 'deploy/systemd/forecastd@.service'), 'utf8');
  const delay = /^ExecStart=.*\s--shutdown-delay\s+(\d+)(\s|$)/m.exec(unit)?.[1];
  if (delay === undefined) throw new Error('deploy/systemd/forecastd@.service passes no --shutdown-delay');
  return delay;
}
const SHUTDOWN_DELAY = shippedShutdownDelay();

/**
 * HAProxy's request log (`%ST %rc %b/%s %Tt "%r"`) from line `from` on: requests, and those it had to send
 * again (a connection refused or closed without an answer, or a 503) before answering.
 */
function retried(balancer: Balancer, from: number): { logged: number; retried: number } {
  const lines = balancer.requestLog().slice(from).filter((l) => /^\d{3} \+?\d+ forecastd\//.test(l));
  return { logged: lines.length, retried: lines.filter((l) => !/^\d{3} 0 /.test(l)).length };
}

describe.skipIf(!postgres.available || !haproxy)('scale-out behind HAProxy (3 replicas, one PostgreSQL table)', () => {
  const setup = balancedCluster({ kind: 'haproxy', seeds: [11, 12], replicaArgs: ['--shutdown-delay', SHUTDOWN_DELAY] });
  const { accepted, models } = setup;

  beforeAll(async () => {
    for (const r of setup.cluster.replicas) await setup.balancer.waitForState(r.name, 'UP');
  });

  it('passes the client X-Request-ID through and gives one to requests without', async () => {
    const given = await httpGet(`${setup.balancer.url}/v1/models/alpha/predict`, { 'x-request-id': 'trace-42' });
    expect(given.status).toBe(200);
    expect(given.headers['x-request-id']).toBe('trace-42');
    expect(accepted.get('alpha')).toContain(
      (() => {
        const b = JSON.parse(given.body) as { model_version: string; prediction: number[] };
        return `${b.model_version}|${b.prediction.join(',')}`;
      })(),
    );
    const fresh = await httpGet(`${setup.balancer.url}/health`);
    expect(fresh.status).toBe(200);
    expect(fresh.body).toBe('ok');
    // HAProxy's unique-id (hex), which forecastd accepted and echoed.
    expect(fresh.headers['x-request-id']).toMatch(/^[0-9A-F]{8,}/);
  });

  it('restarts every replica in turn under load with no failed request, while the table changes', async () => {
    const logFrom = setup.balancer.requestLog().length;
    const run = setup.load();
    await new Promise((r) => setTimeout(r, 3_000));
    const rollStart = run.now();
    const restarts: Record<string, number | string | null>[] = [];
    for (const [i, replica] of setup.cluster.replicas.entries()) {
      const t0 = run.now();
      let markedDownAt = Number.NaN;
      const down = setup.balancer.waitForState(replica.name, 'DOWN').then(() => (markedDownAt = run.now()));
      const exitCode = await replica.stop('SIGTERM');
      const exitedAt = run.now();
      // With the shutdown delay HAProxy has taken it out before it exits. Started again only once it has
      // (a quick restart on the same address could come back before two failed checks), so the new
      // process gets traffic only once it is ready (rise).
      await down;
      replica.start();
      await replica.ready();
      const t1 = run.now();
      await setup.balancer.waitForState(replica.name, 'UP');
      restarts.push({
        replica: replica.name,
        exitCode,
        markedDownMs: round(markedDownAt - t0),
        exitedMs: round(exitedAt - t0),
        readyAgainMs: round(t1 - t0),
        backInRotationMs: round(run.now() - t0),
      });
      if (i === 0) {
        // The data moves on mid-roll: an answer may come from the table just before or just after.
        await setup.accept('alpha', models.alpha!, false, setup.cluster.rows + 1);
        await setup.accept('beta', models.beta!, false, setup.cluster.rows + 1);
        await setup.cluster.appendRows(1);
      }
    }
    const rollEnd = run.now();
    await new Promise((r) => setTimeout(r, 2_000));
    await run.stop();

    expectNoFailures(run);
    expect(restarts.map((r) => r.exitCode)).toEqual([0, 0, 0]);
    // Every replica ends on the new table.
    const newest = await setup.cluster.reference(models.alpha!);
    await setup.cluster.converged('alpha', newest);
    setup.report('rolling-restart', {
      shutdownDelayMs: Number(SHUTDOWN_DELAY),
      ...rollNumbers(run, rollStart, rollEnd),
      p50SteadyMs: round(run.percentile(50, 1_000, rollStart)),
      p50RollMs: round(run.percentile(50, rollStart, rollEnd)),
      retriedByHaproxy: retried(setup.balancer, logFrom).retried,
      restarts,
    });
    // Room for three shutdown delays on top of the roll.
  }, 120_000);

  it('rolls a new model file, then a spicepod that adds a model, across the replicas under load', async () => {
    const v2 = modelFile(21, 2);
    const gamma = modelFile(31, 1);
    let newModel: string | null = null;
    const run = setup.load({ newModel: () => newModel });
    await new Promise((r) => setTimeout(r, 1_000));
    const v1Key = [...accepted.get('alpha')!].at(-1)!;
    const v2Key = await setup.accept('alpha', v2);
    const rollStart = run.now();
    const swaps: number[] = [];
    for (const replica of setup.cluster.replicas) {
      const t0 = run.now();
      replica.replace('models/alpha.onnx', v2.bytes);
      await untilServes(replica, async () => ((await setup.cluster.answerOf(replica, 'alpha')) === v2Key ? true : undefined));
      swaps.push(round(run.now() - t0));
    }
    const modelRollEnd = run.now();
    // After the roll, every replica answers with version 2.
    expect(await Promise.all(setup.cluster.replicas.map((r) => setup.cluster.answerOf(r, 'alpha')))).toEqual([v2Key, v2Key, v2Key]);

    newModel = 'gamma';
    accepted.set('gamma', new Set([await setup.cluster.reference(gamma)]));
    for (const replica of setup.cluster.replicas) {
      replica.replace('models/gamma.onnx', gamma.bytes);
      replica.replace('spicepod.yaml', spicepodYaml(setup.cluster.db.schema, ['alpha', 'beta', 'gamma']));
      await untilServes(replica, async () => ((await setup.cluster.answerOf(replica, 'gamma')) !== null ? true : undefined));
    }
    await new Promise((r) => setTimeout(r, 1_000));
    await run.stop();

    expectNoFailures(run);
    const sawV1 = run.seen.get(`alpha@${v1Key}`) ?? 0;
    const sawV2 = run.seen.get(`alpha@${v2Key}`) ?? 0;
    expect(sawV2).toBeGreaterThan(0);
    expect(run.newModelServed).toBeGreaterThan(0);
    const gammaKey = [...accepted.get('gamma')!][0]!;
    expect(await Promise.all(setup.cluster.replicas.map((r) => setup.cluster.answerOf(r, 'gamma')))).toEqual([gammaKey, gammaKey, gammaKey]);
    setup.report('rolling-model-update', {
      requests: run.requests,
      failed: run.failures.length,
      clientResends: run.clientResends,
      answersV1: sawV1,
      answersV2: sawV2,
      perReplicaSwapMs: swaps,
      modelRollSeconds: round((modelRollEnd - rollStart) / 1000),
      newModelNotYet400: run.notYet,
      newModelServed: run.newModelServed,
    });
  });

  it('brings every replica to the same prediction after rows are appended', async () => {
    const alpha = await setup.cluster.reference(modelFile(21, 2), setup.cluster.rows + 3);
    const t0 = Date.now();
    await setup.cluster.appendRows(3);
    const convergedMs = await setup.cluster.converged('alpha', alpha);
    const answers = await Promise.all(setup.cluster.replicas.map((r) => setup.cluster.answerOf(r, 'alpha')));
    expect(answers).toEqual([alpha, alpha, alpha]);
    // What each replica holds: its own copy of the rows, its model sessions, its process.
    const memory = await Promise.all(
      setup.cluster.replicas.map(async (r) => {
        const metrics = (await httpGet(`${r.url}/metrics`)).body;
        const rss = Number(/^process_resident_memory_bytes (\S+)$/m.exec(metrics)?.[1]);
        const rows = Number(/^forecastd_dataset_rows\{[^}]*\} (\S+)$/m.exec(metrics)?.[1]);
        expect(rows).toBe(setup.cluster.rows);
        return { rssMiB: Math.round(rss / 1048576), rows };
      }),
    );
    setup.report('consistency', { refreshCheckInterval: '1s', convergedMs, sinceInsertMs: Date.now() - t0, memory });
  });

  it('keeps answering when a replica is killed hard under load; HAProxy marks it down', async () => {
    // The table is settled: accept only its current answers.
    await setup.accept('alpha', modelFile(21, 2), true);
    await setup.accept('beta', models.beta!, true);
    const logFrom = setup.balancer.requestLog().length;
    const run = setup.load();
    await new Promise((r) => setTimeout(r, 2_000));
    const victim = setup.cluster.replicas[1]!;
    const killedAt = run.now();
    await victim.stop('SIGKILL');
    await setup.balancer.waitForState(victim.name, 'DOWN');
    const markedDownMs = run.now() - killedAt;
    await new Promise((r) => setTimeout(r, 1_000));
    await run.stop();
    expectNoFailures(run);
    setup.report('hard-kill', {
      requests: run.requests,
      failed: run.failures.length,
      clientResends: run.clientResends,
      markedDownMs: round(markedDownMs),
      retriedByHaproxy: retried(setup.balancer, logFrom).retried,
      p99BeforeMs: round(run.percentile(99, 1_000, killedAt)),
      p99UntilDownMs: round(run.percentile(99, killedAt, killedAt + markedDownMs)),
    });
    victim.start();
    await victim.ready();
    await setup.balancer.waitForState(victim.name, 'UP');
  });
});

function untilServes(replica: { name: string }, probe: () => Promise<true | undefined>): Promise<true> {
  return waitFor(`${replica.name} to serve the change`, probe, 60_000, 25);
}
