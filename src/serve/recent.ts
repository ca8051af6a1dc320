// What /report?window= needs: the last few minutes of intervals, merged into
// chunks (5 s by default) so memory stays bounded whatever the uptime. Each
// chunk keeps the newest `listed` slow packets and stalls (and counts the
// rest): a flood where every packet is slow would otherwise hold 10,000
// packet records per chunk, ~40 MB over a 60 s window.
import { Aggregator } from '../stream/aggregate';

interface Chunk {
  agg: Aggregator;
  startNs: number;
  endNs: number;
}

export class Recent {
  private chunks: Chunk[] = [];
  private current: Chunk | undefined;

  constructor(
    /** The longest window kept (ns). */
    readonly maxNs: number,
    readonly chunkNs = 5e9,
    /** Slow packets and stalls listed per chunk; a window lists the newest of its chunks'. */
    readonly listed = 1000,
  ) {}

  /** One finished interval, [startNs, endNs). */
  add(agg: Aggregator, startNs: number, endNs: number): void {
    if (!this.current) this.current = { agg: agg.fresh({ maxPackets: this.listed, maxStalls: this.listed }), startNs, endNs };
    this.current.agg.merge(agg);
    this.current.endNs = endNs;
    if (endNs - this.current.startNs >= this.chunkNs) {
      this.chunks.push(this.current);
      this.current = undefined;
      while (this.chunks.length && endNs - this.chunks[0].startNs > this.maxNs + this.chunkNs) this.chunks.shift();
    }
  }

  /** The intervals ending within the last `ns` (whole chunks: up to one chunk more), merged; null before the first interval. */
  window(ns: number, nowNs: number): { agg: Aggregator; startNs: number } | null {
    const all = this.current ? [...this.chunks, this.current] : this.chunks;
    const picked = all.filter((c) => c.endNs > nowNs - ns);
    if (!picked.length) return null;
    const agg = picked[0].agg.fresh();
    for (const c of picked) agg.merge(c.agg);
    return { agg, startNs: picked[0].startNs };
  }
}
