// The lab stall (bpf/lab_stall.bpf.c): a bpf_timer callback that busy-loops in
// HRTIMER softirq context on one CPU, standing in for IPVS's estimation_timer.
import { NativeBpfObject } from './addon';
import { globals, loadObject } from './loader';

export interface LabStallOptions {
  cpu: number;
  stallMs: number;
  periodMs: number;
}

export interface LabStallStats {
  runs: number;
  totalNs: number;
  maxNs: number;
  minNs: number;
  lastStartNs: number;
  cpu: number;
  otherCpuRuns: number;
}

export class LabStall {
  private obj: NativeBpfObject | undefined;

  constructor(readonly opts: LabStallOptions) {
    this.obj = loadObject({
      object: 'lab_stall',
      globals: { stall_ns: globals.u64(opts.stallMs * 1e6), period_ns: globals.u64(opts.periodMs * 1e6) },
      start: (obj) => {
        const rc = obj.testRun('lab_stall_start', opts.cpu);
        if (rc !== 0) throw new Error(`lab stall did not start on CPU ${opts.cpu} (program returned ${rc})`);
      },
    });
  }

  stats(): LabStallStats {
    if (!this.obj) throw new Error('lab stall is stopped');
    const b = this.obj.lookup('stall_stats', Buffer.alloc(4))!;
    const n = (off: number) => Number(b.readBigUInt64LE(off));
    return {
      runs: n(0),
      totalNs: n(8),
      maxNs: n(16),
      minNs: n(24),
      lastStartNs: n(32),
      cpu: b.readUInt32LE(40),
      otherCpuRuns: b.readUInt32LE(44),
    };
  }

  /** Freeing the map cancels the timer. */
  stop(): void {
    this.obj?.close();
    this.obj = undefined;
  }
}
