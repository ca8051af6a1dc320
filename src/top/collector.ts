// The dashboard's collector: cuts the session's stream into intervals (one per
// refresh), keeps enough of them for the 10 s window plus a running total, and
// produces immutable snapshots (a v1 report of the window) for the views.
import { Aggregator } from '../aggregate';
import { buildReport, Report } from '../report';
import { TraceSession } from '../tracer';

export const WINDOWS = ['1s', '10s', 'all'] as const;
export type WindowName = (typeof WINDOWS)[number];
const WINDOW_MS: Record<WindowName, number> = { '1s': 1000, '10s': 10_000, all: Infinity };

interface Interval {
  agg: Aggregator;
  ms: number;
}

export interface Snapshot {
  report: Report;
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
  version: string;
  command: string[];
  possibleCpus: number;
  tracedCpus?: number[];
  /** Other event sources feeding the same session (e.g. synthetic load): their drops count too. */
  extraDrops?: () => number;
}

export class Collector {
  private intervals: Interval[] = [];
  private total: Aggregator;
  private lastTickNs = Number(process.hrtime.bigint());
  private lastDrops = 0;
  private readonly startWall = new Date();
  private readonly startMonoNs = Number(process.hrtime.bigint());
  private readonly realtimeOffsetNs = Date.now() * 1e6 - Number(process.hrtime.bigint());

  constructor(
    private readonly session: TraceSession,
    private readonly opts: CollectorOptions,
  ) {
    this.total = session.aggregator.fresh();
  }

  /** Closes the current interval. Call once per refresh. */
  tick(): void {
    const now = Number(process.hrtime.bigint());
    const agg = this.session.rotate();
    this.intervals.push({ agg, ms: (now - this.lastTickNs) / 1e6 });
    this.lastTickNs = now;
    this.total.merge(agg);
    // keep what the 10 s window needs, and at least one interval
    let keptMs = 0;
    let keep = 0;
    for (let i = this.intervals.length - 1; i >= 0 && keptMs < WINDOW_MS['10s']; i--, keep++) keptMs += this.intervals[i].ms;
    this.intervals = this.intervals.slice(-Math.max(1, keep));
  }

  drops(): number {
    return this.session.drops().total + (this.opts.extraDrops?.() ?? 0);
  }

  /** A report of the window; `tick()` first to include the latest interval. */
  snapshot(window: WindowName): Snapshot {
    let agg: Aggregator;
    if (window === 'all') agg = this.total;
    else {
      agg = this.total.fresh();
      let ms = 0;
      for (let i = this.intervals.length - 1; i >= 0 && ms < WINDOW_MS[window] - 1; i--) {
        agg.merge(this.intervals[i].agg);
        ms += this.intervals[i].ms;
      }
    }
    const last = this.intervals[this.intervals.length - 1];
    const dropsTotal = this.drops();
    const dropsRecent = dropsTotal - this.lastDrops;
    this.lastDrops = dropsTotal;
    const takenAt = new Date();
    const report = buildReport({
      aggregator: agg,
      probes: this.session.probes,
      notes: this.session.notes,
      drops: { total: dropsTotal, perCpu: this.session.drops().perCpu },
      kallsyms: this.session.kallsyms,
      startWall: this.startWall,
      endWall: takenAt,
      startMonoNs: this.startMonoNs,
      realtimeOffsetNs: this.realtimeOffsetNs,
      possibleCpus: this.opts.possibleCpus,
      tracedCpus: this.opts.tracedCpus,
      command: this.opts.command,
      version: this.opts.version,
      topTimers: 50,
    });
    return {
      report,
      window,
      eventsPerSec: last && last.ms > 0 ? (last.agg.totalEvents * 1000) / last.ms : 0,
      dropsRecent,
      dropsTotal,
      takenAt,
      realtimeOffsetNs: this.realtimeOffsetNs,
    };
  }

  /** Forgets everything collected so far. */
  reset(): void {
    this.session.rotate();
    this.intervals = [];
    this.total = this.total.fresh();
    this.lastTickNs = Number(process.hrtime.bigint());
  }
}
