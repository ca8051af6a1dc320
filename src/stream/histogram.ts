// Log2-linear histograms in typed arrays: 32 linear sub-buckets per power of
// two, so any recorded value is known to within 1/32 (3 %): 2 ms and 3 ms are
// far apart. Exact min, max, count and sum. Mergeable across CPUs and intervals.
//
// Why not hdr-histogram-js: it records about 7.6 M values/s on these machines,
// which alone would eat the pipeline's 5 M events/s budget; this one is ~20x
// faster because recording is a clz32, a shift and a typed-array increment.

const SUB_BITS = 5;
const SUB = 1 << SUB_BITS; // 32
const LINEAR_LIMIT = SUB * 2; // values below 64 get a bucket each
const MAX_EXP = 44; // values from 2^44 ns (~4.9 h) up share the last bucket
export const BUCKET_COUNT = (MAX_EXP - SUB_BITS) * SUB + SUB * 2; // 1312
const TWO32 = 4294967296;

export function bucketOf(v: number): number {
  if (v < LINEAR_LIMIT) return v < 0 ? 0 : Math.floor(v);
  let exp: number;
  if (v < TWO32) exp = 31 - Math.clz32(v);
  else {
    exp = 63 - Math.clz32(Math.floor(v / TWO32));
    if (exp > MAX_EXP) return BUCKET_COUNT - 1;
  }
  const shift = exp - SUB_BITS;
  const mant = v < TWO32 ? v >>> shift : Math.floor(v / 2 ** shift);
  const i = shift * SUB + mant;
  return i < BUCKET_COUNT ? i : BUCKET_COUNT - 1;
}

/** [lower, upper) of bucket i. */
export function bucketBounds(i: number): [number, number] {
  if (i < LINEAR_LIMIT) return [i, i + 1];
  const shift = Math.floor(i / SUB) - 1;
  const mant = i - shift * SUB;
  return [mant * 2 ** shift, (mant + 1) * 2 ** shift];
}

export interface HistogramSummary {
  count: number;
  sum: number;
  min: number;
  max: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
}

export interface Log2Bucket {
  lo: number;
  hi: number;
  count: number;
}

export class Histogram {
  counts = new Float64Array(BUCKET_COUNT);
  count = 0;
  sum = 0;
  min = Infinity;
  max = 0;

  record(v: number): void {
    this.counts[bucketOf(v)]++;
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  merge(other: Histogram): this {
    if (!other.count) return this;
    const a = this.counts;
    const b = other.counts;
    for (let i = 0; i < BUCKET_COUNT; i++) if (b[i]) a[i] += b[i];
    this.count += other.count;
    this.sum += other.sum;
    if (other.min < this.min) this.min = other.min;
    if (other.max > this.max) this.max = other.max;
    return this;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.sum = 0;
    this.min = Infinity;
    this.max = 0;
  }

  /** Value at quantile q (0..1): the middle of the bucket holding that rank, within [min, max]. */
  quantile(q: number): number {
    if (!this.count) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKET_COUNT; i++) {
      seen += this.counts[i];
      if (seen >= rank) {
        const [lo, hi] = bucketBounds(i);
        const mid = i < LINEAR_LIMIT ? lo : (lo + hi - 1) / 2;
        return Math.min(this.max, Math.max(this.min, Math.round(mid)));
      }
    }
    return this.max;
  }

  summary(): HistogramSummary {
    return {
      count: this.count,
      sum: this.sum,
      min: this.count ? this.min : 0,
      max: this.max,
      p50: this.quantile(0.5),
      p90: this.quantile(0.9),
      p99: this.quantile(0.99),
      p999: this.quantile(0.999),
    };
  }

  /** Power-of-two buckets [2^k, 2^(k+1)) (and [0, 1)), non-empty only, as bpftrace's hist() prints. */
  log2Buckets(): Log2Bucket[] {
    const out: Log2Bucket[] = [];
    let cur: Log2Bucket | undefined;
    for (let i = 0; i < BUCKET_COUNT; i++) {
      const c = this.counts[i];
      if (!c) continue;
      const lo = bucketBounds(i)[0];
      const slotLo = lo === 0 ? 0 : 2 ** Math.floor(Math.log2(lo));
      const slotHi = lo === 0 ? 1 : slotLo * 2;
      if (!cur || cur.lo !== slotLo) {
        cur = { lo: slotLo, hi: slotHi, count: 0 };
        out.push(cur);
      }
      cur.count += c;
    }
    return out;
  }
}
