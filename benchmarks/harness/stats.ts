/** Latency summary of one measured point, in milliseconds. */
export interface LatencySummary {
  count: number;
  mean: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/**
 * Nearest-rank percentiles over every sample (no histogram bucketing: a point holds at most a few
 * hundred thousand samples, so sorting them all is cheap and exact).
 */
export function summarise(samples: Float64Array): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  const n = sorted.length;
  if (n === 0) return { count: 0, mean: NaN, p50: NaN, p95: NaN, p99: NaN, max: NaN };
  let sum = 0;
  for (const v of sorted) sum += v;
  const rank = (p: number): number => sorted[Math.min(n - 1, Math.max(0, Math.ceil(p * n) - 1))]!;
  return {
    count: n,
    mean: round(sum / n),
    p50: round(rank(0.5)),
    p95: round(rank(0.95)),
    p99: round(rank(0.99)),
    max: round(sorted[n - 1]!),
  };
}

/** Three decimals: microsecond resolution for milliseconds, enough for every figure we print. */
export function round(v: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** A growable Float64Array, so a 20 s point at thousands of ops/s does not churn a JS array. */
export class SampleBuffer {
  private data = new Float64Array(16_384);
  private length = 0;

  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }

  values(): Float64Array {
    return this.data.subarray(0, this.length);
  }
}

/** Nearest-rank summary plus p99.9. */
export function summarise999(samples: Float64Array): LatencySummary & { p999: number } {
  const s = summarise(samples);
  const sorted = Float64Array.from(samples).sort();
  const n = sorted.length;
  const p999 = n ? round(sorted[Math.min(n - 1, Math.max(0, Math.ceil(0.999 * n) - 1))]!) : NaN;
  return { ...s, p999 };
}
