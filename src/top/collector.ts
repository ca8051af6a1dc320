// The dashboard's collector: cuts the live trace into intervals (one per
// refresh), keeps enough of them for the 10 s window plus a running total, and
// produces immutable snapshots (the window's summary and verdict, no report)
// for the views. snapshot() changes nothing the views can see, and may be
// called any number of times; it may do work on the way that later calls
// reuse: naming callbacks can build the kallsyms index once, or load the small
// program that names them by %pS, and reads the host's facts.
import os from 'node:os';
import { HostFacts, NO_HOST_FACTS } from '../base/host-facts';
import { clockPair, monotonicNs } from '../base/clock';
import type { PacketVerdict } from '../diagnose/verdict';
import type { ProbeName, ProbeStatus } from '../kernel/probes';
import { summarize, summaryVerdict, TraceSummary } from '../diagnose/summary';
import { Aggregator } from '../stream/aggregate';
import { LiveTrace } from '../stream/live';

export const WINDOWS = ['1s', '10s', 'all'] as const;
export type WindowName = (typeof WINDOWS)[number];
const WINDOW_MS: Record<WindowName, number> = { '1s': 1000, '10s': 10_000, all: Infinity };

interface Interval {
  agg: Aggregator;
  ms: number;
  /** Ring drops during this interval. */
  drops: number;
}

/** Seconds of history the sparklines show. */
export const HISTORY_POINTS = 60;

/** One CPU's NET_RX wait max per second, oldest first (null: no NET_RX then). */
export interface CpuHistory {
  cpu: number;
  netRxWaitMaxNs: (number | null)[];
}

export interface Snapshot {
  summary: TraceSummary;
  verdict: PacketVerdict;
  probes: Record<ProbeName, ProbeStatus>;
  host: string;
  kernel: string;
  /** The last HISTORY_POINTS seconds, whatever the window. */
  history: CpuHistory[];
  window: WindowName;
  /** Events per second over the last interval. */
  eventsPerSec: number;
  /** Drops over the last interval, and since start. */
  dropsRecent: number;
  dropsTotal: number;
  takenAt: Date;
  /** Wall-clock ns = monotonic ns + this. */
  realtimeOffsetNs: number;
}

export interface CollectorOptions {
  /** The host's facts for the verdict (the command gathers them; read again each snapshot, masks change). */
  facts?: () => HostFacts;
}

export class Collector {
  private intervals: Interval[] = [];
  private total: Aggregator;
  private lastTickNs = monotonicNs();
  private lastDrops = 0;
  /** Milliseconds since start (or the last reset) that ticks have closed. */
  private totalMs = 0;
  private readonly start = clockPair();

  constructor(
    private readonly trace: LiveTrace,
    private readonly opts: CollectorOptions,
  ) {
    this.total = trace.aggregator.fresh();
  }

  /** Closes the current interval. Call once per refresh. */
  tick(): void {
    const now = monotonicNs();
    const agg = this.trace.rotate();
    const drops = this.drops();
    this.intervals.push({ agg, ms: (now - this.lastTickNs) / 1e6, drops: drops - this.lastDrops });
    this.totalMs += (now - this.lastTickNs) / 1e6;
    this.lastTickNs = now;
    this.lastDrops = drops;
    this.total.merge(agg);
    this.total.series?.keepLast(HISTORY_POINTS);
    // keep what the 10 s window needs, and at least one interval
    let keptMs = 0;
    let keep = 0;
    for (let i = this.intervals.length - 1; i >= 0 && keptMs < WINDOW_MS['10s']; i--, keep++) keptMs += this.intervals[i].ms;
    this.intervals = this.intervals.slice(-Math.max(1, keep));
  }

  /** Everything lost on the way: ring-full drops, and records the reader could not use. */
  private drops(): number {
    const d = this.trace.drops();
    return d.total + d.badRecords + d.consumeErrors;
  }

  /** The window's summary and verdict as of the last tick(). */
  snapshot(window: WindowName): Snapshot {
    let agg: Aggregator;
    // how long the window really spans (the steal share of the verdict is over it)
    let ms = 0;
    if (window === 'all') {
      agg = this.total;
      ms = this.totalMs;
    } else {
      agg = this.total.fresh();
      for (let i = this.intervals.length - 1; i >= 0 && ms < WINDOW_MS[window] - 1; i--) {
        agg.merge(this.intervals[i].agg);
        ms += this.intervals[i].ms;
      }
    }
    const last = this.intervals[this.intervals.length - 1];
    const session = this.trace.session;
    const takenAt = new Date();
    const summary = summarize(agg, { probes: session.probes, kallsyms: session.kallsyms, topTimers: 50 });
    return {
      summary,
      verdict: summaryVerdict(summary, agg, this.opts.facts?.() ?? NO_HOST_FACTS, ms * 1e6),
      probes: session.probes,
      host: os.hostname(),
      kernel: os.release(),
      history: this.history(),
      window,
      eventsPerSec: last && last.ms > 0 ? (last.agg.totalEvents * 1000) / last.ms : 0,
      dropsRecent: last?.drops ?? 0,
      dropsTotal: this.lastDrops,
      takenAt,
      realtimeOffsetNs: this.start.realtimeOffsetNs,
    };
  }

  private history(): CpuHistory[] {
    const s = this.total.series;
    if (!s) return [];
    const n = s.points;
    const out: CpuHistory[] = [];
    s.cpus.forEach((c, cpu) => {
      if (!c) return;
      const values: (number | null)[] = [];
      for (let j = 0; j < n; j++) values.push(j < c.length && c.waitCount[j] ? c.waitMax[j] : null);
      out.push({ cpu, netRxWaitMaxNs: values });
    });
    return out;
  }

  /** Forgets everything collected so far (drops since start stay: they are never hidden). */
  reset(): void {
    this.trace.rotate();
    this.intervals = [];
    this.total = this.total.fresh();
    this.totalMs = 0;
    this.lastTickNs = monotonicNs();
  }
}
