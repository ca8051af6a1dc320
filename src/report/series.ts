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

export function seriesSection(s: Series, symbolOf: (key: number) => string): ReportSeries {
  s.closeAll();
  const points = s.points;
  const cpus: CpuSeriesRow[] = [];
  s.cpus.forEach((c, cpu) => {
    if (!c) return;
    c.grow(points);
    const softirqNs: Record<string, number[]> = {};
    c.softirqNs.forEach((col, vec) => {
      if (col.some((v) => v > 0)) softirqNs[SOFTIRQ_NAMES[vec]] = col.slice(0, points);
    });
    const waited = (col: number[]) => col.slice(0, points).map((v, j) => (c.waitCount[j] ? v : null));
    cpus.push({
      cpu,
      netRxWaitMaxNs: waited(c.waitMax),
      netRxWaitP99Ns: waited(c.waitP99),
      softirqNs,
      longestTimer: c.timerMaxNs.slice(0, points).map((ns, j) => (c.timerKey[j] ? { symbol: symbolOf(c.timerKey[j]), durationNs: ns } : null)),
      slowPackets: c.slowPackets.slice(0, points),
    });
  });
  return { intervalNs: s.intervalNs, startNs: s.originNs + s.base * s.intervalNs, points, cpus };
}
