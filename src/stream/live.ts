// A live trace: a kernel trace session whose ring batches are aggregated as
// they arrive. rotate() cuts the stream into intervals for views that show
// windows (top, serve). Every command that traces goes through this.
import { readStealNs } from '../host/steal';
import { Func, KernelHistIndex } from '../kernel/abi';
import { Drops, TraceSession, SessionOptions } from '../kernel/session';
import { Aggregator, AggregatorOptions } from './aggregate';
import { KernelHist, parsePercpuHist, since } from './kernel-histogram';

export type LiveTraceOptions = Omit<SessionOptions, 'onBatch' | 'slowPacketNs' | 'pauseMinNs' | 'slowWakeupNs'> & AggregatorOptions;

/** Another ring feeding the same aggregator (the synthetic load): drained with the session's ring, its drops counted with its drops. */
export interface ExtraSource {
  drain(): number;
  drops(): number;
}

export class LiveTrace {
  /** Where events go now; rotate() swaps in a fresh one. */
  aggregator: Aggregator;
  readonly session: TraceSession;
  /** The kernel's packet-wait counters at the last fold. */
  private lastWait: KernelHist[] = [];
  /** The kernel's run histograms at the last fold: [enum js_kernel_hist][cpu]. */
  private lastRuns: KernelHist[][] = [];
  /** Steal per CPU at the last fold. */
  private lastSteal = readStealNs();
  private stopped = false;
  private readonly extras: ExtraSource[] = [];

  private constructor(opts: LiveTraceOptions) {
    this.aggregator = new Aggregator({ selfPid: process.pid, ...opts });
    this.session = TraceSession.start({
      ...opts,
      slowPacketNs: this.aggregator.slowPacketNs,
      slowWakeupNs: this.aggregator.slowWakeupNs,
      pauseMinNs: this.aggregator.stallThresholdNs,
      onBatch: (buf, count) => this.aggregator.consume(buf, count),
    });
  }

  /** Moves what the kernel's packet-wait histograms and the host's steal gained since the last fold into `into`. */
  private fold(into: Aggregator): void {
    const steal = readStealNs();
    steal.forEach((ns, cpu) => into.addSteal(cpu, ns - (this.lastSteal[cpu] ?? ns)));
    this.lastSteal = steal;
    this.foldPacketWait(into);
    this.foldRuns(into);
  }

  /** What the kernel counted: serve's runs it did not stream (the streamed ones are in the aggregator already), and every mode's network wake-up waits. */
  private foldRuns(into: Aggregator): void {
    this.session.runHistBytes().forEach((bytes, idx) => {
      if (!bytes) return;
      const now = parsePercpuHist(bytes);
      now.forEach((k, cpu) => {
        const d = since(k, this.lastRuns[idx]?.[cpu]);
        if (!d.count) return;
        if (idx === KernelHistIndex.NET_RX_ACTION) into.addKernel('func', cpu, Func.NET_RX_ACTION, d);
        else if (idx === KernelHistIndex.WAKEUP_WAIT) into.addKernel('wakeupWait', cpu, 0, d);
        else if (idx >= KernelHistIndex.SOFTIRQ_WAIT) into.addKernel('softirqWait', cpu, idx - KernelHistIndex.SOFTIRQ_WAIT, d);
        else into.addKernel('softirq', cpu, idx - KernelHistIndex.SOFTIRQ_RUN, d);
      });
      this.lastRuns[idx] = now;
    });
  }

  private foldPacketWait(into: Aggregator): void {
    const bytes = this.session.packetWaitBytes();
    if (!bytes) return;
    const now = parsePercpuHist(bytes);
    now.forEach((k, cpu) => {
      const d = since(k, this.lastWait[cpu]);
      if (d.unknown) into.addPacketWaitUnknown(cpu, d.unknown);
      if (d.count) into.addKernel('packetWait', cpu, 0, d);
    });
    this.lastWait = now;
  }

  static start(opts: LiveTraceOptions = {}): LiveTrace {
    return new LiveTrace(opts);
  }

  /** Adds a ring that feeds this trace's aggregator: rotate() drains it too, so an interval holds exactly what was written before it closed. */
  addSource(s: ExtraSource): void {
    this.extras.push(s);
  }

  /** The session's drops, with those of the extra sources in the total. */
  drops(): Drops {
    const d = this.session.drops();
    return { ...d, total: d.total + this.extras.reduce((n, s) => n + s.drops(), 0) };
  }

  /** Returns the aggregator filled so far and continues into a fresh one. */
  rotate(): Aggregator {
    const done = this.aggregator;
    this.session.drain();
    for (const s of this.extras) s.drain();
    this.fold(done);
    this.aggregator = done.fresh();
    return done;
  }

  /** Detaches (draining the ring) and folds the last of the kernel's histograms in. Safe to call again. */
  stop(): void {
    this.session.stop();
    if (!this.stopped) this.fold(this.aggregator);
    this.stopped = true;
  }
}
