// Per-CPU time series at a fixed interval (1 s by default): NET_RX wait max
// and p99, time spent in each softirq vector, the longest timer callback and
// the slow-packet count. Fed by the aggregator as events arrive; an event
// counts in the interval where it started. Columns are plain number arrays
// from a common first interval (`base`), so a point costs ~16 numbers per CPU.
import { NR_SOFTIRQS, NET_RX_SOFTIRQ } from '../kernel/abi';
import { Histogram } from './histogram';

/** One CPU's columns; index j is interval `base + j`. */
export class CpuSeries {
  waitMax: number[] = [];
  waitP99: number[] = [];
  /** NET_RX softirqs whose wait was measured. */
  waitCount: number[] = [];
  /** ns per vector: softirqNs[vec][j]. */
  softirqNs: number[][] = Array.from({ length: NR_SOFTIRQS }, () => []);
  timerMaxNs: number[] = [];
  /** Callback address (low 52 bits) of the longest timer run, 0 if none. */
  timerKey: number[] = [];
  slowPackets: number[] = [];
  /** The interval whose wait p99 is still being measured, and its histogram. */
  openIndex = -1;
  readonly open = new Histogram();

  get length(): number {
    return this.waitMax.length;
  }

  grow(n: number): void {
    while (this.waitMax.length < n) {
      this.waitMax.push(0);
      this.waitP99.push(0);
      this.waitCount.push(0);
      for (const col of this.softirqNs) col.push(0);
      this.timerMaxNs.push(0);
      this.timerKey.push(0);
      this.slowPackets.push(0);
    }
  }

  /** Interval j's NET_RX wait p99, the open interval's read from its histogram: a read changes nothing. */
  p99At(j: number): number {
    return j === this.openIndex && this.open.count ? this.open.quantile(0.99) : (this.waitP99[j] ?? 0);
  }

  /** Moves the open interval's p99 into its column. */
  close(): void {
    if (this.openIndex >= 0 && this.open.count) this.waitP99[this.openIndex] = this.open.quantile(0.99);
    this.open.reset();
    this.openIndex = -1;
  }

  /** Drops the first n points. */
  shift(n: number): void {
    const cut = (a: number[]) => a.splice(0, n);
    [this.waitMax, this.waitP99, this.waitCount, this.timerMaxNs, this.timerKey, this.slowPackets].forEach(cut);
    this.softirqNs.forEach(cut);
    if (this.openIndex < 0) return;
    this.openIndex -= n;
    if (this.openIndex < 0) {
      this.open.reset(); // its interval is gone
      this.openIndex = -1;
    }
  }

  /** Puts n empty points in front. */
  pad(n: number): void {
    const z = (a: number[]) => new Array<number>(n).fill(0).concat(a);
    this.waitMax = z(this.waitMax);
    this.waitP99 = z(this.waitP99);
    this.waitCount = z(this.waitCount);
    this.softirqNs = this.softirqNs.map(z);
    this.timerMaxNs = z(this.timerMaxNs);
    this.timerKey = z(this.timerKey);
    this.slowPackets = z(this.slowPackets);
    if (this.openIndex >= 0) this.openIndex += n;
  }
}

export class Series {
  readonly cpus: (CpuSeries | undefined)[] = [];
  /** Interval number of column index 0: the first event's, so a series started late holds no empty past. */
  base = 0;
  private empty = true;

  constructor(
    readonly intervalNs: number,
    /** Monotonic ns where interval 0 starts (tracing start). */
    readonly originNs: number,
  ) {}

  /** An empty series on the same grid. */
  fresh(): Series {
    return new Series(this.intervalNs, this.originNs);
  }

  /** Column index of an event that started at `startNs` (on CPU `c`), growing the columns to hold it. */
  private at(c: CpuSeries, startNs: number): number {
    let idx = Math.floor((startNs - this.originNs) / this.intervalNs);
    if (idx < 0) idx = 0; // began before tracing: the first interval
    if (this.empty) {
      this.base = idx;
      this.empty = false;
    } else if (idx < this.base) this.rebase(idx);
    const j = idx - this.base;
    if (j >= c.length) c.grow(j + 1);
    return j;
  }

  /** Moves column 0 back to interval `idx`. */
  private rebase(idx: number): void {
    for (const c of this.cpus) c?.pad(this.base - idx);
    this.base = idx;
  }

  private cpu(cpu: number): CpuSeries {
    return (this.cpus[cpu] ??= new CpuSeries());
  }

  softirq(cpu: number, vec: number, startNs: number, runNs: number, waitNs: number | null): void {
    const c = this.cpu(cpu);
    const j = this.at(c, startNs);
    c.softirqNs[vec][j] += runNs;
    if (vec !== NET_RX_SOFTIRQ || waitNs === null) return;
    if (waitNs > c.waitMax[j]) c.waitMax[j] = waitNs;
    c.waitCount[j]++;
    if (j > c.openIndex) {
      c.close();
      c.openIndex = j;
    }
    if (j === c.openIndex) c.open.record(waitNs); // a late event for a closed interval counts in its max only
  }

  timer(cpu: number, key: number, startNs: number, runNs: number): void {
    const c = this.cpu(cpu);
    const j = this.at(c, startNs);
    if (runNs > c.timerMaxNs[j]) {
      c.timerMaxNs[j] = runNs;
      c.timerKey[j] = key;
    }
  }

  slowPacket(cpu: number, startNs: number): void {
    const c = this.cpu(cpu);
    c.slowPackets[this.at(c, startNs)]++;
  }

  /** Ends every open interval (before reading p99s). */
  closeAll(): void {
    for (const c of this.cpus) c?.close();
  }

  /** Number of intervals from `base` that any CPU holds. */
  get points(): number {
    // reduce, not map: a CPU with no events is a hole in the array, which map keeps as a hole (NaN in Math.max)
    return this.cpus.reduce((n, c) => Math.max(n, c?.length ?? 0), 0);
  }

  /** Folds a series on the same grid into this one: maxima, sums; p99 as the larger of the two. Reads `o` without changing it. */
  merge(o: Series): this {
    if (o.intervalNs !== this.intervalNs || o.originNs !== this.originNs) throw new Error('series on different grids');
    this.closeAll();
    if (o.empty) return this;
    if (this.empty) {
      this.base = o.base;
      this.empty = false;
    } else if (o.base < this.base) this.rebase(o.base);
    o.cpus.forEach((from, cpu) => {
      if (!from) return;
      const into = this.cpu(cpu);
      const off = o.base - this.base;
      into.grow(off + from.length);
      for (let k = 0; k < from.length; k++) {
        const j = off + k;
        if (from.waitMax[k] > into.waitMax[j]) into.waitMax[j] = from.waitMax[k];
        const p99 = from.p99At(k);
        if (p99 > into.waitP99[j]) into.waitP99[j] = p99;
        into.waitCount[j] += from.waitCount[k];
        for (let v = 0; v < NR_SOFTIRQS; v++) into.softirqNs[v][j] += from.softirqNs[v][k];
        if (from.timerMaxNs[k] > into.timerMaxNs[j]) {
          into.timerMaxNs[j] = from.timerMaxNs[k];
          into.timerKey[j] = from.timerKey[k];
        }
        into.slowPackets[j] += from.slowPackets[k];
      }
    });
    return this;
  }

  /** Keeps only the last `n` intervals (views that show a sliding window). */
  keepLast(n: number): void {
    const drop = this.points - n;
    if (drop <= 0) return;
    for (const c of this.cpus) c?.shift(Math.min(drop, c.length));
    this.base += drop;
  }
}
