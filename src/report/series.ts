// The report's `series` section: the aggregator's per-CPU time series as
// JSON, one array per figure, one element per interval (null: nothing measured).
import { SOFTIRQ_NAMES } from '../kernel/abi';
import { Series } from '../stream/series';

export interface CpuSeriesRow {
  cpu: number;
  netRxWaitMaxNs: (number | null)[];
  netRxWaitP99Ns: (number | null)[];
  /** ns spent in each softirq vector that ran at all, by name (NET_RX, TIMER, ...). */
  softirqNs: Record<string, number[]>;
  /** The longest timer or hrtimer callback that started in the interval. */
  longestTimer: ({ symbol: string; durationNs: number } | null)[];
  slowPackets: number[];
}

export interface ReportSeries {
  intervalNs: number;
  /** Monotonic ns where the first interval starts (see meta.clock). */
  startNs: number;
  points: number;
  cpus: CpuSeriesRow[];
}

/** Every timer key the series names, for resolving in one go. */
export function seriesTimerKeys(s: Series): number[] {
  const keys = new Set<number>();
  for (const c of s.cpus) c?.timerKey.forEach((k) => k && keys.add(k));
  return [...keys];
}

/** The series as JSON; reading it changes nothing (the open interval's p99 is read, not closed). */
export function seriesSection(s: Series, symbolOf: (key: number) => string): ReportSeries {
  const points = s.points;
  const cpus: CpuSeriesRow[] = [];
  // a CPU's columns may be shorter than the longest: the missing points are empty
  const column = (col: number[]) => Array.from({ length: points }, (_, j) => col[j] ?? 0);
  s.cpus.forEach((c, cpu) => {
    if (!c) return;
    const softirqNs: Record<string, number[]> = {};
    c.softirqNs.forEach((col, vec) => {
      if (col.some((v) => v > 0)) softirqNs[SOFTIRQ_NAMES[vec]] = column(col);
    });
    const waited = (value: (j: number) => number) => Array.from({ length: points }, (_, j) => (c.waitCount[j] ? value(j) : null));
    cpus.push({
      cpu,
      netRxWaitMaxNs: waited((j) => c.waitMax[j]),
      netRxWaitP99Ns: waited((j) => c.p99At(j)),
      softirqNs,
      longestTimer: Array.from({ length: points }, (_, j) => (c.timerKey[j] ? { symbol: symbolOf(c.timerKey[j]), durationNs: c.timerMaxNs[j] } : null)),
      slowPackets: column(c.slowPackets),
    });
  });
  return { intervalNs: s.intervalNs, startNs: s.originNs + s.base * s.intervalNs, points, cpus };
}
