// npm run bench:pipeline — events/s through ring buffer -> addon -> TypeScript
// aggregation. The synthetic generator (src/kernel/synthetic.ts) runs on CPU 1 from a
// worker thread at an offered rate; the main thread (CPU 0 under taskset)
// consumes as `record` does. Prints one line per offered rate, then
// `pipeline: N events/s, D drops` for the highest rate consumed with no drops.
import { EVENT_SIZE } from '../src/kernel/abi';
import { Aggregator, AggregatorOptions } from '../src/stream/aggregate';
import { native } from '../src/kernel/addon';
import { SyntheticLoad } from '../src/kernel/synthetic';
import { WORDS_PER_EVENT } from '../src/stream/decode';

async function runAt(rate: number, seconds: number) {
  // as record aggregates: with the per-second time series
  const agg = new Aggregator({ stallThresholdNs: 1e12, seriesIntervalNs: 1e9, seriesOriginNs: 0 });
  const t0 = process.hrtime.bigint();
  const load = new SyntheticLoad({ rate, seconds, cpu: 1 }, (buf, count) => agg.consume(buf, count));
  const produced = await load.finished;
  load.drain();
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const drops = load.drops();
  await load.stop();
  const consumed = agg.totalEvents;
  return { rate, produced: produced / secs, consumed: consumed / secs, drops, lost: produced - consumed - drops };
}

/** The aggregation alone, on a buffer of generator-like events: the JS ceiling. */
function aggregationOnly(opts: AggregatorOptions = {}): number {
  const n = 1 << 14;
  const buf = new ArrayBuffer(n * EVENT_SIZE);
  const u32 = new Uint32Array(buf);
  const u16 = new Uint16Array(buf);
  for (let i = 0; i < n; i++) {
    const w = i * WORDS_PER_EVENT;
    u32[w] = i * 1000;
    u32[w + 2] = (i * 7919) % 300000;
    u32[w + 4] = i & 1 ? i % 10 : 0x81000000 + (i % 64) * 64;
    u32[w + 5] = i & 1 ? 0 : 0xffffffff;
    u32[w + 6] = i & 1;
    u16[w * 2 + 14] = i & 1 ? 1 : 2;
  }
  const agg = new Aggregator(opts);
  const t0 = process.hrtime.bigint();
  let total = 0;
  while (Number(process.hrtime.bigint() - t0) < 1e9) {
    agg.consume(buf, n);
    total += n;
  }
  return total / (Number(process.hrtime.bigint() - t0) / 1e9);
}

const M = (x: number) => `${(x / 1e6).toFixed(2)} M/s`;

async function main() {
  const args = process.argv.slice(2);
  const seconds = Number(args.find((a) => a.startsWith('--seconds='))?.split('=')[1] ?? 3);
  const rates = (args.find((a) => a.startsWith('--rates='))?.split('=')[1] ?? '2,4,5,6,8,10').split(',').map((r) => Number(r) * 1e6);
  if (native().numPossibleCpus < 2) throw new Error('the benchmark needs 2 CPUs (producer on CPU 1, consumer on CPU 0)');
  const plain = aggregationOnly();
  const withSeries = aggregationOnly({ seriesIntervalNs: 1e9, seriesOriginNs: 0 });
  console.log(`aggregation alone (no kernel): ${M(plain)}; with the 1 s time series: ${M(withSeries)} (${((withSeries / plain) * 100).toFixed(0)} %)`);
  const sat = await runAt(0, seconds);
  console.log(`unthrottled producer: produced ${M(sat.produced)}, consumed ${M(sat.consumed)}, drops ${sat.drops}`);
  let best: Awaited<ReturnType<typeof runAt>> | undefined;
  for (const rate of rates) {
    const r = await runAt(rate, seconds);
    console.log(`offered ${M(rate)}: produced ${M(r.produced)}, consumed ${M(r.consumed)}, drops ${r.drops}${r.lost ? `, unaccounted ${r.lost}` : ''}`);
    if (r.drops === 0 && r.lost === 0) {
      if (!best || r.consumed > best.consumed) best = r;
    } else break;
  }
  if (best) console.log(`pipeline: ${Math.round(best.consumed)} events/s, 0 drops`);
  else console.log(`pipeline: ${Math.round(sat.consumed)} events/s, ${sat.drops} drops`);
}

main().catch((e) => {
  console.error(`bench:pipeline: ${e.message}`);
  process.exitCode = 1;
});
