// The report model (jitterscope.report/v2, schema/report.v2.json): what a
// trace found, built from an aggregator, with the verdict over its slow
// packets. It knows no command: a command that adds a section (ping) extends it.
import os from 'node:os';
import { ClockPair } from '../base/clock';
import { HostFacts, NO_HOST_FACTS } from '../base/host-facts';
import { Kallsyms } from '../host/kallsyms';
import { ProbeName, ProbeStatus } from '../kernel/probes';
import type { Drops } from '../kernel/session';
import { Aggregator } from '../stream/aggregate';
import { Log2Bucket } from '../stream/histogram';
import { seriesSection, seriesTimerKeys } from './series';
import { histogramRows, summarize, summaryVerdict, symbolOf } from '../diagnose/summary';
import { Report, REPORT_SCHEMA_ID } from './types';

export type { Log2Bucket };
export type { CpuSummary, HistogramRow, PingReport, PingSection, Report, TimerRow } from './types';
export { REPORT_SCHEMA_ID };

export interface ReportInput {
  aggregator: Aggregator;
  probes: Record<ProbeName, ProbeStatus>;
  notes: string[];
  drops: Drops;
  kallsyms?: Kallsyms;
  /** The host's facts for the verdict (RPS masks, interface names, IPVS switch), gathered by the command; none: no RPS finding. */
  facts?: HostFacts;
  /** When tracing started, on both clocks. */
  start: ClockPair;
  endWall: Date;
  possibleCpus: number;
  tracedCpus?: number[];
  command: string[];
  version: string;
  topTimers?: number;
}

export function buildReport(inp: ReportInput): Report {
  const agg = inp.aggregator;
  const sum = summarize(agg, { probes: inp.probes, kallsyms: inp.kallsyms, topTimers: inp.topTimers });
  if (agg.series) inp.kallsyms?.resolveAll(seriesTimerKeys(agg.series));
  const durationNs = (inp.endWall.getTime() - inp.start.wall.getTime()) * 1e6;
  const verdict = summaryVerdict(sum, agg, inp.facts ?? NO_HOST_FACTS, durationNs);
  const slowest = agg.icmp
    .filter((p) => p.waitNs !== null)
    .sort((a, b) => b.waitNs! - a.waitNs!)
    .slice(0, 20);
  return {
    schema: REPORT_SCHEMA_ID,
    meta: {
      tool: { name: 'jitterscope', version: inp.version },
      host: os.hostname(),
      kernel: os.release(),
      command: inp.command,
      startTime: inp.start.wall.toISOString(),
      endTime: inp.endWall.toISOString(),
      durationMs: inp.endWall.getTime() - inp.start.wall.getTime(),
      clock: { source: 'CLOCK_MONOTONIC', startNs: inp.start.monoNs, realtimeOffsetNs: inp.start.realtimeOffsetNs },
      cpus: { possible: inp.possibleCpus, traced: inp.tracedCpus ?? 'all' },
      probes: inp.probes,
      drops: { total: inp.drops.total, perCpu: inp.drops.perCpu, badRecords: inp.drops.badRecords, consumeErrors: inp.drops.consumeErrors },
      events: { ...agg.events, total: agg.totalEvents },
      notes: inp.notes,
    },
    verdict,
    cpus: sum.cpus,
    histograms: histogramRows(sum.histograms),
    timers: sum.timers,
    packets: sum.packets,
    icmp: {
      perCpu: agg.icmpCount.map((count, cpu) => ({ cpu, count })).filter((r) => r.count),
      packets: agg.icmp.slice(), // a copy: the aggregator goes on (top, serve)
      packetsNotKept: agg.icmpNotKept,
      slowest,
    },
    stalls: sum.stalls,
    receive: sum.receive,
    wakeups: sum.wakeups,
    ...(agg.series ? { series: seriesSection(agg.series, (key) => symbolOf(inp.kallsyms, key)) } : {}),
  };
}
