/**
 * What a model's runs cost, as the batcher measures them: a run of b windows takes about
 * `fixedMs + b * perWindowMs`. Fitted by least squares over the recent runs (older ones weigh less, so the
 * estimate follows the machine's load), seeded by a calibration at warm-up.
 *
 * The batcher reads one number from it, `efficientBatch`: the batch size from which the fixed part of a run
 * (handing it over, starting each operator, reading the weights) costs no more than its windows do. Splitting
 * queued windows into runs smaller than that buys parallelism with CPU time the windows themselves do not need.
 */
// Runs before their own spread of sizes may set the per-window cost (their weighted count, which recent decay
// leaves just under a whole number, is compared half a run lower).
const MIN_RUNS_FOR_SLOPE = 8;

// Runs before their level may replace a calibration's.
const MIN_RUNS_FOR_LEVEL = 4;

export class RunCostModel {
  // Exponentially weighted sums over (b, t) observations: Σw, Σw·b, Σw·b², Σw·t, Σw·b·t.
  #s0 = 0;
  #s1 = 0;
  #s2 = 0;
  #t0 = 0;
  #t1 = 0;
  #fixedMs = 0;
  #perWindowMs = 0;
  #known = false;
  readonly #decay: number;

  /** `memory`: about how many recent runs the estimate reflects (at least MIN_RUNS_FOR_SLOPE + 1). */
  constructor(memory = 64) {
    this.#decay = 1 - 1 / Math.max(MIN_RUNS_FOR_SLOPE + 1, memory);
  }

  /** True once a calibration or enough runs of different sizes were seen. */
  get known(): boolean {
    return this.#known;
  }

  /** Milliseconds a run costs whatever its size (≥ 0). */
  get fixedMs(): number {
    return this.#fixedMs;
  }

  /** Milliseconds each window adds to a run (≥ 0). */
  get perWindowMs(): number {
    return this.#perWindowMs;
  }

  /** The expected milliseconds of a run of `size` windows (0 while nothing is known). */
  expectedMs(size: number): number {
    return this.#fixedMs + size * this.#perWindowMs;
  }

  /**
   * The smallest batch whose windows cost at least the run's fixed part, between 1 and `maxBatchSize`;
   * 1 while nothing is known (so that an unmeasured model is batched as before).
   */
  efficientBatch(maxBatchSize: number): number {
    if (!this.#known) return 1;
    if (this.#perWindowMs <= 0) return maxBatchSize;
    const size = Math.ceil(this.#fixedMs / this.#perWindowMs);
    return Math.min(maxBatchSize, Math.max(1, size));
  }

  /**
   * Sets the estimate from a calibration: median run times of two batch sizes. The observed runs that follow
   * refine the level at once and the per-window cost once their own sizes vary enough to show it.
   */
  calibrate(smallSize: number, smallMs: number, largeSize: number, largeMs: number): void {
    if (!(largeSize > smallSize) || !Number.isFinite(smallMs) || !Number.isFinite(largeMs)) return;
    const perWindow = Math.max(0, (largeMs - smallMs) / (largeSize - smallSize));
    this.#set(Math.max(0, smallMs - smallSize * perWindow), perWindow);
    // Runs seen before (a warm-up's first, slowest run) say nothing the calibration does not say better.
    this.#s0 = this.#s1 = this.#s2 = this.#t0 = this.#t1 = 0;
  }

  /** One finished run of `size` windows that took `ms`. */
  observe(size: number, ms: number): void {
    if (!(size >= 1) || !Number.isFinite(ms) || ms < 0) return;
    this.#add(size, ms);
    const { spread, slope, mean, meanSize } = this.#fit();
    if (spread) {
      const perWindow = Math.max(0, slope);
      this.#set(Math.max(0, mean - perWindow * meanSize), perWindow);
    } else if (this.#known && this.#s0 >= MIN_RUNS_FOR_LEVEL - 0.5) {
      // The recent runs were all about one size: keep the per-window cost, follow their level (once there are a
      // few, so that one slow run does not replace a calibration).
      this.#fixedMs = Math.max(0, mean - this.#perWindowMs * meanSize);
    }
  }

  #add(size: number, ms: number): void {
    const d = this.#decay;
    this.#s0 = this.#s0 * d + 1;
    this.#s1 = this.#s1 * d + size;
    this.#s2 = this.#s2 * d + size * size;
    this.#t0 = this.#t0 * d + ms;
    this.#t1 = this.#t1 * d + size * ms;
  }

  #fit(): { spread: boolean; slope: number; mean: number; meanSize: number } {
    const s0 = this.#s0;
    const meanSize = this.#s1 / s0;
    const mean = this.#t0 / s0;
    const variance = this.#s2 / s0 - meanSize * meanSize;
    // Sizes that hardly vary, or too few runs, say nothing reliable about the per-window cost.
    if (!(variance > 0.25) || s0 < MIN_RUNS_FOR_SLOPE - 0.5) return { spread: false, slope: 0, mean, meanSize };
    const covariance = this.#t1 / s0 - meanSize * mean;
    return { spread: true, slope: covariance / variance, mean, meanSize };
  }

  #set(fixedMs: number, perWindowMs: number): void {
    this.#fixedMs = fixedMs;
    this.#perWindowMs = perWindowMs;
    this.#known = true;
  }
}
