// npm run bench:pipeline — events/s through ring buffer -> addon -> TypeScript
// aggregation. A BPF generator (bpf/bench_gen.bpf.c), run on CPU 1 from a worker
// thread with BPF_PROG_TEST_RUN, writes tracer-format events at an offered rate;
// the main thread (CPU 0 under taskset) consumes them as `record` does.
// Prints one line per offered rate, then `pipeline: N events/s, D drops` for
// the highest rate consumed with no drops.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { EVENT_SIZE } from '../src/abi';
import { Aggregator } from '../src/aggregate';
import { native, readPercpuCounter } from '../src/native';

const BATCH = 4096; // events per BPF_PROG_TEST_RUN
const PRODUCER_CPU = 1;

interface Job {
  fd: number;
  rate: number; // events/s; 0 = as fast as possible
  seconds: number;
}

function producer(job: Job): void {
  const addon = native();
  const start = process.hrtime.bigint();
  const endNs = BigInt(Math.round(job.seconds * 1e9));
  let calls = 0;
  for (;;) {
    const elapsed = process.hrtime.bigint() - start;
    if (elapsed >= endNs) break;
    if (job.rate && calls * BATCH > (Number(elapsed) / 1e9) * job.rate) continue; // ahead of schedule
    addon.testRunFd(job.fd, PRODUCER_CPU);
    calls++;
  }
  parentPort!.postMessage({ produced: calls * BATCH });
}

async function runAt(rate: number, seconds: number) {
  const addon = native();
  const obj = new addon.BpfObject('bench_gen');
  const b = Buffer.alloc(4);
  b.writeUInt32LE(BATCH);
  obj.setGlobal('batch_size', b);
  obj.setMapMaxEntries('events', 64 << 20);
  obj.load();
  const agg = new Aggregator({ stallThresholdNs: 1e12 });
  const ring = new addon.RingReader(obj, 'events', (buf, count) => agg.consume(buf, count), 256 * 1024, EVENT_SIZE, 1 << 18);
  const t0 = process.hrtime.bigint();
  const worker = new Worker(__filename, { workerData: { fd: obj.programFd('bench_emit'), rate, seconds } as Job });
  const { produced } = await new Promise<{ produced: number }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  ring.drain();
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const drops = readPercpuCounter(obj, 'drops').total;
  ring.close();
  obj.close();
  await worker.terminate();
  const consumed = agg.totalEvents;
  return { rate, produced: produced / secs, consumed: consumed / secs, drops, lost: produced - consumed - drops };
}

/** The aggregation alone, on a buffer of generator-like events: the JS ceiling. */
function aggregationOnly(): number {
  const n = 1 << 14;
  const buf = new ArrayBuffer(n * EVENT_SIZE);
  const u32 = new Uint32Array(buf);
  const u16 = new Uint16Array(buf);
  for (let i = 0; i < n; i++) {
    const w = i * 12;
    u32[w] = i * 1000;
    u32[w + 2] = (i * 7919) % 300000;
    u32[w + 4] = i & 1 ? i % 10 : 0x81000000 + (i % 64) * 64;
    u32[w + 5] = i & 1 ? 0 : 0xffffffff;
    u32[w + 6] = i & 1;
    u16[w * 2 + 14] = i & 1 ? 1 : 2;
  }
  const agg = new Aggregator();
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
  console.log(`aggregation alone (no kernel): ${M(aggregationOnly())}`);
  const sat = await runAt(0, seconds);
  console.log(`unthrottled producer: produced ${M(sat.produced)}, consumed ${M(sat.consumed)}, drops ${sat.drops}`);
  let best: Awaited<ReturnType<typeof runAt>> | undefined;
  for (const rate of rates) {
    const r = await runAt(rate, seconds);
    console.log(
      `offered ${M(rate)}: produced ${M(r.produced)}, consumed ${M(r.consumed)}, drops ${r.drops}${r.lost ? `, unaccounted ${r.lost}` : ''}`,
    );
    if (r.drops === 0 && r.lost === 0) {
      if (!best || r.consumed > best.consumed) best = r;
    } else break;
  }
  if (best) console.log(`pipeline: ${Math.round(best.consumed)} events/s, 0 drops`);
  else console.log(`pipeline: ${Math.round(sat.consumed)} events/s, ${sat.drops} drops`);
}

if (isMainThread) {
  main().catch((e) => {
    console.error(`bench:pipeline: ${e.message}`);
    process.exitCode = 1;
  });
} else producer(workerData as Job);
