// Synthetic load: the bench generator (bpf/bench_gen.bpf.c) writing tracer-
// format events at a chosen rate from a worker thread, into a ring read on the
// main loop. Used by `npm run bench:pipeline`, and by `top --synthetic-rate`,
// `serve --synthetic-rate` and `bench:soak --load=synthetic` to show the
// pipeline, the dashboard and the exporter keep up; never part of a real trace.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { BatchCallback, eventRing, native, NativeBpfObject, NativeRingReader, readPercpuCounter } from './addon';
import { globals, loadObject } from './loader';

const SYNTHETIC_BATCH = 4096; // events per BPF_PROG_TEST_RUN

interface ProducerJob {
  kind: 'jitterscope-synthetic';
  fd: number;
  rate: number; // events/s; 0 = as fast as possible
  seconds: number; // 0 = until stopped
  cpu: number;
  stop: SharedArrayBuffer;
}

export interface SyntheticOptions {
  rate: number;
  seconds?: number;
  /** CPU the generator runs on. */
  cpu?: number;
  ringBytes?: number;
}

export class SyntheticLoad {
  private obj: NativeBpfObject | undefined;
  private ring: NativeRingReader | undefined;
  private worker: Worker | undefined;
  private readonly stopFlag = new Int32Array(new SharedArrayBuffer(4));
  /** Resolves with the number of events produced when the producer ends. */
  readonly finished: Promise<number>;

  constructor(opts: SyntheticOptions, onBatch: BatchCallback) {
    const obj = (this.obj = loadObject({
      object: 'bench_gen',
      autoload: (p) => p === 'bench_emit',
      globals: { batch_size: globals.u32(SYNTHETIC_BATCH) },
      maxEntries: { events: opts.ringBytes ?? 64 << 20 },
      start: (o) => (this.ring = eventRing(o, onBatch)),
    }));
    const job: ProducerJob = {
      kind: 'jitterscope-synthetic',
      fd: obj.programFd('bench_emit'),
      rate: opts.rate,
      seconds: opts.seconds ?? 0,
      cpu: opts.cpu ?? -1,
      stop: this.stopFlag.buffer as SharedArrayBuffer,
    };
    // the producer only loops over a syscall: a small heap keeps it from holding
    // tens of MB of young generation that the measured process does not own
    const worker = (this.worker = new Worker(__filename, { workerData: job, resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 16 } }));
    this.finished = new Promise<number>((resolve, reject) => {
      worker.once('message', (m: { produced: number }) => resolve(m.produced));
      worker.once('error', reject);
    });
  }

  drops(): number {
    return this.obj ? readPercpuCounter(this.obj, 'drops').total : 0;
  }

  drain(): number {
    return this.ring?.drain() ?? 0;
  }

  /** Stops the producer, drains, frees everything. */
  async stop(): Promise<void> {
    Atomics.store(this.stopFlag, 0, 1);
    if (this.worker) {
      await this.finished.catch(() => 0);
      await this.worker.terminate();
      this.worker = undefined;
    }
    this.ring?.drain();
    this.ring?.close();
    this.ring = undefined;
    this.obj?.close();
    this.obj = undefined;
  }
}

function produce(job: ProducerJob): void {
  const addon = native();
  const stop = new Int32Array(job.stop);
  const start = process.hrtime.bigint();
  let calls = 0;
  for (;;) {
    const elapsedS = Number(process.hrtime.bigint() - start) / 1e9;
    if ((job.seconds && elapsedS >= job.seconds) || Atomics.load(stop, 0)) break;
    if (job.rate && calls * SYNTHETIC_BATCH > elapsedS * job.rate) {
      // ahead of schedule: sleep a little below the time one batch takes at this rate
      if (job.rate < 20e6) Atomics.wait(stop, 0, 0, Math.max(0.05, (SYNTHETIC_BATCH / job.rate) * 500));
      continue;
    }
    addon.testRunFd(job.fd, job.cpu);
    calls++;
  }
  parentPort!.postMessage({ produced: calls * SYNTHETIC_BATCH });
}

if (!isMainThread && (workerData as ProducerJob | undefined)?.kind === 'jitterscope-synthetic') produce(workerData);
