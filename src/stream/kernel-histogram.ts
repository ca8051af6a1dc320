// The per-CPU histograms the kernel keeps (struct js_hist in bpf/jitterscope.h):
// packet waits (every packet in record/top, the packets of late NET_RX runs in
// serve) and serve's short softirq and net_rx_action runs; parsed from the
// map's bytes, differenced between two reads, and kept as they came
// (KernelCounts): the exporter reads their buckets directly, and a report
// turns them into our Histogram (toHistogram) for its quantiles.
import { HIST_BUCKETS, HIST_SUB_BITS, HIST_VALUE_BYTES } from '../kernel/abi';
import { bucketOf, Histogram, log2LinearBounds } from './histogram';

export interface KernelHist {
  count: number;
  sumNs: number;
  maxNs: number;
  unknown: number;
  buckets: Float64Array;
}

/** [lo, hi) of kernel bucket i: values below 8 exactly, then 4 per power of two. */
export const kernelBucketBounds = (i: number) => log2LinearBounds(i, HIST_SUB_BITS);

/** The value of a per-CPU map lookup: one struct js_hist per possible CPU. */
export function parsePercpuHist(buf: Buffer): KernelHist[] {
  const out: KernelHist[] = [];
  for (let off = 0; off + HIST_VALUE_BYTES <= buf.length; off += HIST_VALUE_BYTES) {
    const u64 = (i: number) => Number(buf.readBigUInt64LE(off + i * 8));
    const buckets = new Float64Array(HIST_BUCKETS);
    for (let b = 0; b < HIST_BUCKETS; b++) buckets[b] = u64(4 + b);
    out.push({ count: u64(0), sumNs: u64(1), maxNs: u64(2), unknown: u64(3), buckets });
  }
  return out;
}

/** What `now` holds beyond `before` (the kernel's counters only grow). Max is the period's if it grew, else unknown: the bucket bound. */
export function since(now: KernelHist, before: KernelHist | undefined): KernelHist {
  if (!before) return now;
  const buckets = now.buckets.map((c, i) => c - before.buckets[i]);
  let top = -1;
  for (let i = HIST_BUCKETS - 1; i >= 0 && top < 0; i--) if (buckets[i] > 0) top = i;
  const maxNs = now.maxNs > before.maxNs ? now.maxNs : top >= 0 ? Math.min(now.maxNs, kernelBucketBounds(top)[1] - 1) : 0;
  return { count: now.count - before.count, sumNs: now.sumNs - before.sumNs, maxNs, unknown: now.unknown - before.unknown, buckets };
}

/** Our Histogram from the kernel's: exact count, sum and max; each bucket's values at its middle. */
export function toHistogram(k: KernelHist): Histogram {
  const buckets: [number, number][] = [];
  let min = Infinity;
  k.buckets.forEach((n, i) => {
    if (!n) return;
    const [lo, hi] = kernelBucketBounds(i);
    // each value as the middle of its kernel bucket (no more than the greatest), in our bucket of that
    buckets.push([bucketOf(Math.min(k.maxNs, Math.floor((lo + hi - 1) / 2))), n]);
    if (min === Infinity) min = lo;
  });
  return Histogram.counted(buckets, { count: k.count, sum: k.sumNs, min, max: k.maxNs });
}

/** a + b (neither changes). */
export function sumKernelHists(a: KernelHist, b: KernelHist): KernelHist {
  return {
    count: a.count + b.count,
    sumNs: a.sumNs + b.sumNs,
    maxNs: Math.max(a.maxNs, b.maxNs),
    unknown: a.unknown + b.unknown,
    buckets: a.buckets.map((n, i) => n + b.buckets[i]),
  };
}

/** Which aggregator table a kernel histogram adds to: softirq runs and waits (key: vector), traced functions (key: enum js_func), packet waits (key 0). */
export type KernelTable = 'softirq' | 'softirqWait' | 'func' | 'packetWait' | 'wakeupWait';

export interface KernelEntry {
  table: KernelTable;
  cpu: number;
  key: number;
  hist: KernelHist;
}

/** Kernel-counted histograms of an interval (or of merged ones), by table, key and CPU. */
export class KernelCounts {
  private readonly byId = new Map<string, KernelEntry>();

  add(table: KernelTable, cpu: number, key: number, hist: KernelHist): void {
    const id = `${table}/${key}/${cpu}`;
    const e = this.byId.get(id);
    this.byId.set(id, { table, cpu, key, hist: e ? sumKernelHists(e.hist, hist) : hist });
  }

  get(table: KernelTable, cpu: number, key: number): KernelHist | undefined {
    return this.byId.get(`${table}/${key}/${cpu}`)?.hist;
  }

  merge(o: KernelCounts): void {
    for (const e of o.byId.values()) this.add(e.table, e.cpu, e.key, e.hist);
  }

  entries(table?: KernelTable): KernelEntry[] {
    const all = [...this.byId.values()];
    return table ? all.filter((e) => e.table === table) : all;
  }
}
