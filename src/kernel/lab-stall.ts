// The lab stall (bpf/lab_stall.bpf.c): a bpf_timer callback that busy-loops in
// HRTIMER softirq context on one CPU, standing in for IPVS's estimation_timer;
// and, when asked for, the lab pause: interrupts held off on a CPU from its hard
// timer interrupt, as a host pausing the vCPU would look from inside.
import { NativeBpfObject } from './addon';
import { globals, loadObject } from './loader';

export interface LabStallOptions {
  cpu: number;
  stallMs: number;
  periodMs: number;
  /** Hold interrupts off this long on `pauseCpu` (default: no pauses)... */
  pauseMs?: number;
  /** ...at most this often (default 1 s)... */
  pausePeriodMs?: number;
  /** ...on this CPU (default: `cpu`). */
  pauseCpu?: number;
}

export interface LabPauseStats {
  runs: number;
  maxNs: number;
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
    const pauses = (opts.pauseMs ?? 0) > 0;
    this.obj = loadObject({
      object: 'lab_stall',
      autoload: (p) => p !== 'lab_irqs_off' || pauses,
      globals: {
        stall_ns: globals.u64(opts.stallMs * 1e6),
        period_ns: globals.u64(opts.periodMs * 1e6),
        irqs_off_ns: globals.u64((opts.pauseMs ?? 0) * 1e6),
        irqs_off_period_ns: globals.u64((opts.pausePeriodMs ?? 1000) * 1e6),
        irqs_off_cpu: globals.u32(opts.pauseCpu ?? opts.cpu),
      },
      start: (obj) => {
        const rc = obj.testRun('lab_stall_start', opts.cpu);
        if (rc !== 0) throw new Error(`lab stall did not start on CPU ${opts.cpu} (program returned ${rc})`);
        if (pauses) obj.attach('lab_irqs_off');
      },
    });
  }

  /** The lab pauses so far (zero when none were asked for). */
  pauseStats(): LabPauseStats {
    if (!this.obj) throw new Error('lab stall is stopped');
    const b = this.obj.lookup('irqs_off_stats', Buffer.alloc(4))!;
    return { runs: Number(b.readBigUInt64LE(8)), maxNs: Number(b.readBigUInt64LE(16)) };
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
