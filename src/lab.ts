// The lab stall (bpf/lab_stall.bpf.c): a bpf_timer callback that busy-loops in
// HRTIMER softirq context on one CPU, standing in for IPVS's estimation_timer.
import { native, NativeBpfObject } from './native';

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

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(Math.round(n)));
  return b;
}

export class LabStall {
  private obj: NativeBpfObject | undefined;

  constructor(readonly opts: LabStallOptions) {
    const obj = new (native().BpfObject)('lab_stall');
    try {
      obj.setGlobal('stall_ns', u64(opts.stallMs * 1e6));
      obj.setGlobal('period_ns', u64(opts.periodMs * 1e6));
      obj.load();
      const rc = obj.testRun('lab_stall_start', opts.cpu);
      if (rc !== 0) throw new Error(`lab stall did not start on CPU ${opts.cpu} (program returned ${rc})`);
    } catch (e) {
      obj.close();
      throw e;
    }
    this.obj = obj;
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
