/**
 * deploy/ checked where it can be without a cluster: the Kubernetes manifests against the API's schemas
 * (kubernetes-models, offline), and every number that must agree with something else — CLI flags, ports,
 * probes, grace periods against the shutdown sequence, the spicepod in the ConfigMap, the systemd unit,
 * the Dockerfile, the HAProxy health-check timing.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap, PersistentVolumeClaim, Service } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { loadSpicepod } from '../../src/spicepod/load.js';
import { REPO } from '../server/fixtures.js';

/** What native teardown may take after the drain (SPEC's shutdown sequence). */
const TEARDOWN_MS = 2_000;

const read = (relative: string): string => readFileSync(path.join(REPO, relative), 'utf8');

/** The long options `forecastd --help` lists, from the built CLI. */
function cliFlags(): Set<string> {
  const help = execFileSync(process.execPath, [path.join(REPO, 'dist/cli.js'), '--help'], { encoding: 'utf8' });
  return new Set([...help.matchAll(/^\s+(--[a-z-]+)/gm)].map((m) => m[1]!));
}

/** `--flag value` pairs of an argument list; positional arguments under ''. */
function flagsOf(args: readonly string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) flags.set('', arg);
    else if (arg === '--no-watch') flags.set(arg, '');
    else flags.set(arg, args[++i] ?? '');
  }
  return flags;
}

function expectKnownFlags(args: readonly string[], where: string): Map<string, string> {
  const known = cliFlags();
  const flags = flagsOf(args);
  for (const flag of flags.keys()) if (flag !== '') expect(known, `${where}: ${flag} is not a forecastd option`).toContain(flag);
  return flags;
}

function ms(flags: Map<string, string>, flag: string): number {
  const value = Number(flags.get(flag));
  expect(Number.isInteger(value), `${flag} ${flags.get(flag)}`).toBe(true);
  return value;
}

/** HAProxy's health-check timing from the `default-server` line: `inter` (ms) and `fall`. */
function haproxyChecks(config: string): { interMs: number; fall: number } {
  const line = /^\s*default-server\s+(.+)$/m.exec(config)?.[1];
  expect(line, 'a default-server line').toBeDefined();
  const words = line!.split(/\s+/);
  expect(words).toContain('check');
  const after = (key: string): string | undefined => words[words.indexOf(key) + 1];
  const inter = /^(\d+)(ms|s)?$/.exec(after('inter') ?? '');
  expect(inter, `inter ${after('inter')}`).not.toBeNull();
  const interMs = Number(inter![1]) * (inter![2] === 's' ? 1000 : 1);
  const fall = Number(after('fall'));
  expect(Number.isInteger(fall) && fall > 0, `fall ${after('fall')}`).toBe(true);
  return { interMs, fall };
}

const MODELS = {
  ConfigMap,
  Deployment,
  Service,
  HorizontalPodAutoscaler,
  PersistentVolumeClaim,
} as const;

function manifests(): { kind: string; object: Record<string, unknown> }[] {
  return parseAllDocuments(read('deploy/kubernetes/forecastd.yaml')).map((doc) => {
    expect(doc.errors).toEqual([]);
    const object = doc.toJS() as { kind: string };
    return { kind: object.kind, object: object as unknown as Record<string, unknown> };
  });
}

describe('deploy/kubernetes/forecastd.yaml', () => {
  const docs = manifests();
  const byKind = <T,>(kind: keyof typeof MODELS): T => {
    const found = docs.filter((d) => d.kind === kind);
    expect(found).toHaveLength(1);
    return new MODELS[kind](found[0]!.object as never) as unknown as T;
  };
  const deployment = byKind<Deployment>('Deployment');
  const container = deployment.spec!.template.spec!.containers[0]!;

  it('runs the image of deploy/Dockerfile, which it says is Node.js 24 on Debian 13', () => {
    expect(read('deploy/kubernetes/forecastd.yaml')).toMatch(/deploy\/Dockerfile \(Node\.js 24 on Debian 13\)/);
    expect(container.image).toMatch(/^forecastd:/);
  });

  it('is valid against the Kubernetes API schemas, object by object', () => {
    expect(docs.map((d) => d.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'PersistentVolumeClaim', 'Service']);
    for (const { kind, object } of docs) {
      const model = new MODELS[kind as keyof typeof MODELS](object as never);
      expect(() => model.validate(), kind).not.toThrow();
    }
    // The check has teeth: a wrong type is refused.
    const broken = structuredClone(docs.find((d) => d.kind === 'Deployment')!.object) as { spec: { replicas: unknown } };
    broken.spec.replicas = 'three';
    expect(() => new Deployment(broken as never).validate()).toThrow(/replicas must be integer/);
  });

  it('passes only options the CLI has, listening where the probes, Service and scrape annotations look', () => {
    const flags = expectKnownFlags(container.args ?? [], 'Deployment args');
    const port = Number(/:(\d+)$/.exec(flags.get('--http') ?? '')?.[1]);
    expect(flags.get('--http')).toMatch(/^0\.0\.0\.0:\d+$/);
    const http = container.ports!.find((p) => p.name === 'http')!;
    expect(http.containerPort).toBe(port);
    expect(container.readinessProbe!.httpGet).toMatchObject({ path: '/v1/ready', port: 'http' });
    expect(container.startupProbe!.httpGet).toMatchObject({ path: '/v1/ready', port: 'http' });
    expect(container.livenessProbe!.httpGet).toMatchObject({ path: '/health', port: 'http' });
    const annotations = deployment.spec!.template.metadata!.annotations!;
    expect(annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(port), 'prometheus.io/path': '/metrics' });
    const service = byKind<Service>('Service');
    expect(service.spec!.ports![0]!.targetPort).toBe('http');
    expect(service.spec!.selector).toEqual(deployment.spec!.selector.matchLabels);
    expect(deployment.spec!.template.metadata!.labels).toMatchObject(deployment.spec!.selector.matchLabels!);
    const hpa = byKind<HorizontalPodAutoscaler>('HorizontalPodAutoscaler');
    expect(hpa.spec!.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata!.name });
    expect(hpa.spec!.minReplicas).toBeLessThanOrEqual(deployment.spec!.replicas!);
    // The HPA scales on CPU utilisation, which needs a CPU request.
    expect(container.resources!.requests!['cpu']).toBeDefined();
    expect(container.resources!.limits!['cpu']).toBeDefined();
  });

  it('gives the shutdown sequence time: unready before the socket closes, drained before the kill', () => {
    const flags = expectKnownFlags(container.args ?? [], 'Deployment args');
    const delay = ms(flags, '--shutdown-delay');
    const drain = ms(flags, '--drain-timeout');
    // The delay does what a preStop sleep would; both would only add up.
    expect(container.lifecycle?.preStop).toBeUndefined();
    // /v1/ready answers 503 from SIGTERM on: the readiness probe sees it within period × failureThreshold,
    // plus up to one period for the probe that had just passed; only then may the socket close.
    const readiness = container.readinessProbe!;
    expect(readiness.httpGet!.path).toBe('/v1/ready');
    expect(delay).toBeGreaterThanOrEqual((readiness.failureThreshold! + 1) * readiness.periodSeconds! * 1000);
    expect(deployment.spec!.template.spec!.terminationGracePeriodSeconds! * 1000).toBeGreaterThanOrEqual(delay + drain + TEARDOWN_MS);
    // Rolling one pod at a time without ever going below the replica count.
    expect(deployment.spec!.strategy).toMatchObject({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0 } });
    // Liveness never kills a pod that is still loading: the startup probe holds it off for minutes.
    const startup = container.startupProbe!;
    expect(startup.periodSeconds! * startup.failureThreshold!).toBeGreaterThanOrEqual(120);
  });

  it('mounts a spicepod that loads, whose models live on the models volume', async () => {
    const configMap = byKind<ConfigMap>('ConfigMap');
    const volumes = deployment.spec!.template.spec!.volumes!;
    const mounts = container.volumeMounts!;
    const podVolume = volumes.find((v) => v.configMap?.name === configMap.metadata!.name)!;
    const podMount = mounts.find((m) => m.name === podVolume.name)!;
    // A folder mount (not subPath) is what lets ConfigMap edits reach the pod.
    expect(podMount.subPath).toBeUndefined();
    expect(flagsOf(container.args ?? []).get('')).toBe(podMount.mountPath);
    const modelsVolume = volumes.find((v) => v.persistentVolumeClaim !== undefined)!;
    expect(modelsVolume.persistentVolumeClaim!.claimName).toBe(byKind<PersistentVolumeClaim>('PersistentVolumeClaim').metadata!.name);
    const modelsMount = mounts.find((m) => m.name === modelsVolume.name)!;

    const dir = mkdtempSync(path.join(tmpdir(), 'forecastd-configmap-'));
    try {
      const file = path.join(dir, 'spicepod.yaml');
      writeFileSync(file, configMap.data!['spicepod.yaml']!);
      // Every ${env:...} the pod uses is set on the container.
      const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value ?? 'from-a-secret']));
      const pod = await loadSpicepod(file, env);
      expect(pod.models.length).toBeGreaterThan(0);
      for (const model of pod.models) expect(model.from).toMatch(new RegExp(`^file:${modelsMount.mountPath}/[^/]+\\.onnx$`));
      await expect(loadSpicepod(file, {})).rejects.toThrow(/PGHOST/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('deploy/systemd, deploy/Dockerfile, deploy/haproxy', () => {
  it('the systemd unit runs the CLI with its options and stops within TimeoutStopSec', () => {
    const unit = read('deploy/systemd/forecastd@.service');
    const exec = /^ExecStart=(.+)$/m.exec(unit)![1]!.split(/\s+/);
    expect(exec.slice(0, 2)).toEqual(['/usr/bin/node', '/opt/forecastd/dist/cli.js']);
    expect(unit).toMatch(/Node\.js 24/);
    const flags = expectKnownFlags(exec.slice(2), 'ExecStart');
    expect(flags.get('--http')).toBe('127.0.0.1:%i');
    const timeout = Number(/^TimeoutStopSec=(\d+)$/m.exec(unit)![1]) * 1000;
    const delay = ms(flags, '--shutdown-delay');
    expect(timeout).toBeGreaterThanOrEqual(delay + ms(flags, '--drain-timeout') + TEARDOWN_MS);
    expect(unit).toMatch(/^KillSignal=SIGTERM$/m);
    expect(unit).toMatch(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);

    // The replicas it runs sit behind deploy/haproxy/haproxy.cfg: HAProxy must mark one DOWN (fall failed
    // checks, inter apart, plus up to one inter for the check that had just passed) before its socket closes.
    const haproxy = read('deploy/haproxy/haproxy.cfg');
    expect(haproxy).toMatch(/http-check send meth GET uri \/v1\/ready ver HTTP\/1\.1 hdr Host \S+/);
    const checks = haproxyChecks(haproxy);
    expect(delay).toBeGreaterThanOrEqual((checks.fall + 1) * checks.interMs);
  });

  it('the Dockerfile builds on the official Node 24 Debian 13 image and runs the CLI with its options', () => {
    const dockerfile = read('deploy/Dockerfile');
    const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(froms.length).toBeGreaterThan(0);
    // Node 20 is past its end of life; the server's uWebSockets.js build for Node 24 needs glibc 2.38+.
    for (const from of froms) expect(from).toBe('node:24-trixie-slim');
    // The image installs with the steps scripts/test-debian13.sh runs in its Debian 13 root.
    expect(dockerfile).toMatch(/^RUN sh \/tmp\/install\.sh system$/m);
    expect(dockerfile).toMatch(/^RUN sh deploy\/install\.sh project /m);
    expect(read('scripts/test-debian13.sh')).toMatch(/install\.sh system/);
    expect(read('scripts/test-debian13.sh')).toMatch(/sh deploy\/install\.sh project/);
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)![1]!) as string[];
    const flags = expectKnownFlags(cmd, 'CMD');
    const port = /:(\d+)$/.exec(flags.get('--http')!)![1];
    expect(dockerfile).toMatch(new RegExp(`^EXPOSE ${port}$`, 'm'));
    expect(JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)![1]!)).toEqual(['node', '/app/dist/cli.js']);
    expect(dockerfile).toMatch(/^USER node$/m);
  });
});
