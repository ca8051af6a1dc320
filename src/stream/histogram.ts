// Log2-linear histograms in typed arrays: 32 linear sub-buckets per power of
// two, so any recorded value is known to within 1/32 (3 %): 2 ms and 3 ms are
// far apart. Exact min, max, count and sum. Mergeable across CPUs and intervals.
//
// Why not hdr-histogram-js: it records about 7.6 M values/s on these machines,
// which alone would eat the pipeline's 5 M events/s budget; this one is ~20x
// faster because recording is a clz32, a shift and a typed-array increment.
import { TWO32 } from '../base/address';

const SUB_BITS = 5;
const SUB = 1 << SUB_BITS; // 32
const LINEAR_LIMIT = SUB * 2; // values below 64 get a bucket each
const MAX_EXP = 44; // values from 2^44 ns (~4.9 h) up share the last bucket
export const BUCKET_COUNT = (MAX_EXP - SUB_BITS) * SUB + SUB * 2; // 1312

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

/**
 * [lower, upper) of bucket i of a log2-linear layout with 2^subBits
 * sub-buckets a power of two: values below 2^(subBits+1) exactly, then
 * 2^subBits buckets per power of two. Ours (SUB_BITS) and the kernel's
 * (HIST_SUB_BITS, struct js_hist) are both this layout.
 */
export function log2LinearBounds(i: number, subBits: number): [number, number] {
  const sub = 1 << subBits;
  if (i < 2 * sub) return [i, i + 1];
  const shift = Math.floor(i / sub) - 1;
  const mant = i - shift * sub;
  return [mant * 2 ** shift, (mant + 1) * 2 ** shift];
}

/** [lower, upper) of bucket i. */
export const bucketBounds = (i: number) => log2LinearBounds(i, SUB_BITS);

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

const EMPTY = new Float64Array(0);
/** Buckets a histogram's storage starts with; it grows to cover what it sees. */
const FIRST_SPAN = 32;

export class Histogram {
  /**
   * Counts of buckets [base, base + bins.length) only: a callback's runs span
   * a few powers of two, so storing all 1312 buckets (10 KiB) for each of the
   * thousands of histograms `serve` keeps for /report would be mostly zeros.
   */
  private bins: Float64Array = EMPTY;
  private base = 0;
  private n = 0;
  private total = 0;
  private lo = Infinity;
  private hi = 0;

  /** Values recorded, their sum, the least and the greatest (exact; Infinity and 0 when empty). */
  get count(): number {
    return this.n;
  }
  get sum(): number {
    return this.total;
  }
  get min(): number {
    return this.lo;
  }
  get max(): number {
    return this.hi;
  }

  /**
   * A histogram of values known only by bucket (the kernel's), with the
   * exact count, sum, least and greatest that were kept beside them.
   */
  static counted(buckets: Iterable<[bucket: number, n: number]>, totals: { count: number; sum: number; min: number; max: number }): Histogram {
    const h = new Histogram();
    for (const [i, n] of buckets) h.addAt(i, n);
    h.n = totals.count;
    h.total = totals.sum;
    h.lo = totals.min;
    h.hi = totals.max;
    return h;
  }

  record(v: number): void {
    const j = bucketOf(v) - this.base;
    if (j >= 0 && j < this.bins.length) this.bins[j]++;
    else this.addAt(j + this.base, 1);
    this.n++;
    this.total += v;
    if (v < this.lo) this.lo = v;
    if (v > this.hi) this.hi = v;
  }

  /** Every bucket's count, BUCKET_COUNT long (a copy). */
  get counts(): Float64Array {
    const out = new Float64Array(BUCKET_COUNT);
    out.set(this.bins, this.base);
    return out;
  }

  private addAt(i: number, n: number): void {
    let j = i - this.base;
    if (j < 0 || j >= this.bins.length) {
      // grow to cover i, with as much slack again as the span already stored
      const lo = this.bins.length ? Math.min(this.base, i) : i;
      const hi = this.bins.length ? Math.max(this.base + this.bins.length, i + 1) : i + 1;
      const want = Math.min(BUCKET_COUNT, Math.max(FIRST_SPAN, 2 * (hi - lo)));
      const newBase = Math.max(0, Math.min(lo - ((want - (hi - lo)) >> 1), BUCKET_COUNT - want));
      const bins = new Float64Array(want);
      if (this.bins.length) bins.set(this.bins, this.base - newBase);
      this.bins = bins;
      this.base = newBase;
      j = i - this.base;
    }
    this.bins[j] += n;
  }

  merge(other: Histogram): this {
    if (!other.count) return this;
    const b = other.bins;
    for (let k = 0; k < b.length; k++) if (b[k]) this.addAt(other.base + k, b[k]);
    this.n += other.n;
    this.total += other.total;
    if (other.lo < this.lo) this.lo = other.lo;
    if (other.hi > this.hi) this.hi = other.hi;
    return this;
  }

  reset(): void {
    this.bins = EMPTY;
    this.base = 0;
    this.n = 0;
    this.total = 0;
    this.lo = Infinity;
    this.hi = 0;
  }

  /** Value at quantile q (0..1): the middle of the bucket holding that rank, within [min, max]. */
  quantile(q: number): number {
    if (!this.count) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let k = 0; k < this.bins.length; k++) {
      seen += this.bins[k];
      if (seen >= rank) {
        const i = this.base + k;
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
    for (let k = 0; k < this.bins.length; k++) {
      const c = this.bins[k];
      if (!c) continue;
      const i = this.base + k;
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
