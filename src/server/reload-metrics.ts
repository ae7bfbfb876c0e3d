import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';

/**
 * Metrics of hot reload, in the server's own registry: an operator alerts on a spicepod edit that did not
 * apply (the server keeps serving the previous configuration) and on model reloads that failed.
 */
export class ReloadMetrics {
  private readonly podReloads: Counter<'result'>;
  private readonly podFailing: Gauge;
  private readonly modelReloads: Counter<'model' | 'result'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.podReloads = existing<Counter<'result'>>(registry, 'forecastd_spicepod_reloads_total') ??
      new Counter({
        name: 'forecastd_spicepod_reloads_total',
        help: 'Re-reads of a changed spicepod.yaml, by result (applied or failed; a failed one changes nothing).',
        labelNames: ['result'],
        registers,
      });
    this.podFailing = existing<Gauge>(registry, 'forecastd_spicepod_reload_failing') ??
      new Gauge({
        name: 'forecastd_spicepod_reload_failing',
        help: '1 while the spicepod.yaml on disk is invalid and the server serves the configuration it last applied.',
        registers,
      });
    this.modelReloads = existing<Counter<'model' | 'result'>>(registry, 'forecastd_model_reloads_total') ??
      new Counter({
        name: 'forecastd_model_reloads_total',
        help: 'Reloads of a changed model (file or configuration), by model and result (swapped or failed; a failed one keeps serving the previous version).',
        labelNames: ['model', 'result'],
        registers,
      });
    this.podFailing.set(0);
  }

  podReloaded(ok: boolean): void {
    this.podReloads.inc({ result: ok ? 'applied' : 'failed' });
    this.podFailing.set(ok ? 0 : 1);
  }

  modelReloaded(model: string, ok: boolean): void {
    this.modelReloads.inc({ model, result: ok ? 'swapped' : 'failed' });
  }

  /** A model removed from the pod: its series go with it (one added back under that name starts at zero). */
  forgetModel(model: string): void {
    this.modelReloads.remove({ model, result: 'swapped' });
    this.modelReloads.remove({ model, result: 'failed' });
  }
}

function existing<T>(registry: Registry, name: string): T | undefined {
  return registry.getSingleMetric(name) as T | undefined;
}
