// The report model (jitterscope.report/v2, schema/report.v2.json): what a
// trace found, built from an aggregator, with the verdict over its slow
// packets. It knows no command: a command that adds a section (ping) extends it.
import os from 'node:os';
import { ClockPair } from '../base/clock';
import { kernelAddressHex } from '../base/format';
import { HostFacts, isIpvsEstimation, NO_HOST_FACTS } from '../base/host-facts';
import { Kallsyms } from '../host/kallsyms';
import { Func, HRTIMER_SOFTIRQ, NET_RX_SOFTIRQ, SOFTIRQ_NAMES, TIMER_SOFTIRQ } from '../kernel/abi';
import { isDirect } from '../kernel/ladder';
import { ProbeName, ProbeStatus } from '../kernel/probes';
import type { Drops } from '../kernel/session';
import { attributePackets, attributeReceiveStalls, indexStalls, PAUSE_CULPRIT, StallRow, taskCulprit } from '../diagnose/attribute';
import { packetVerdict } from '../diagnose/verdict';
import { Aggregator, Stall } from '../stream/aggregate';
import { Histogram, Log2Bucket } from '../stream/histogram';
import { seriesSection, seriesTimerKeys } from './series';

import { CpuSummary, HistogramRow, Report, REPORT_SCHEMA_ID, TimerRow } from './types';

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

type PerCpu = (Histogram | undefined)[];

function row(probe: HistogramRow['probe'], cpu: number | null, key: string | null, h: Histogram): HistogramRow {
  return { probe, cpu, key, unit: 'ns', ...h.summary(), buckets: h.log2Buckets() };
}

/** Adds per-CPU rows and one merged (cpu: null) row for a per-CPU histogram list. */
function perCpuRows(out: HistogramRow[], probe: HistogramRow['probe'], key: string | null, list: PerCpu): void {
  const all = new Histogram();
  list.forEach((h, cpu) => {
    if (!h || !h.count) return;
    out.push(row(probe, cpu, key, h));
    all.merge(h);
  });
  if (all.count) out.push(row(probe, null, key, all));
}

function symbolOf(k: Kallsyms | undefined, key52: number): string {
  return k?.resolve(key52) ?? kernelAddressHex(key52);
}

/** A stall's culprit by name: "TIMER softirq", a callback's symbol, the pause, or a task as comm[pid]. */
function stallCulprit(s: Stall, k: Kallsyms | undefined): string {
  if (s.kind === 'softirq') return `${SOFTIRQ_NAMES[s.key]} softirq`;
  if (s.kind === 'pause') return PAUSE_CULPRIT;
  if (s.kind === 'task') return taskCulprit(s.label ?? '?', s.key);
  return symbolOf(k, s.key);
}

export function buildReport(inp: ReportInput): Report {
  const agg = inp.aggregator;
  const k = inp.kallsyms;
  const histograms: HistogramRow[] = [];
  const column = (table: PerCpu[], vec: number): PerCpu => table.map((r) => r?.[vec]);

  for (let vec = 0; vec < SOFTIRQ_NAMES.length; vec++) {
    perCpuRows(histograms, 'softirq', SOFTIRQ_NAMES[vec], column(agg.softirq, vec));
    perCpuRows(histograms, 'softirq_wait', SOFTIRQ_NAMES[vec], column(agg.softirqWait, vec));
  }
  const netRx = inp.probes.net_rx_action;
  const netRxRun: PerCpu = !netRx?.active ? [] : isDirect(netRx.via) ? agg.funcs[Func.NET_RX_ACTION] ?? [] : column(agg.softirq, NET_RX_SOFTIRQ);
  perCpuRows(histograms, 'net_rx_action', null, netRxRun);
  const netRxWait: PerCpu = inp.probes.net_rx_wait?.active ? column(agg.softirqWait, NET_RX_SOFTIRQ) : [];
  perCpuRows(histograms, 'net_rx_wait', null, netRxWait);
  perCpuRows(histograms, 'icmp_rcv', null, agg.icmpWait);
  perCpuRows(histograms, 'packet_wait', null, agg.packetWait);
  perCpuRows(histograms, 'pause', null, agg.pauses);

  // fentry/kprobe runs of estimation_timer (kept even if ip_vs went away since);
  // without them, its runs as a timer callback
  let ipvsRuns: PerCpu = agg.funcs[Func.ESTIMATION_TIMER] ?? [];
  const timerRows: TimerRow[] = [];
  const stalls = agg.stalls();
  k?.resolveAll([
    ...agg.timers.keys(),
    ...stalls.filter((s) => s.kind === 'timer' || s.kind === 'hrtimer').map((s) => s.key),
    ...(agg.series ? seriesTimerKeys(agg.series) : []),
  ]);
  const worstByCpu: CpuSummary['worst'][] = [];
  for (const t of agg.timers.values()) {
    const symbol = symbolOf(k, t.key);
    perCpuRows(histograms, 'timer_callbacks', symbol, t.perCpu);
    if (!agg.funcs[Func.ESTIMATION_TIMER] && inp.probes.ipvs_estimation?.active && isIpvsEstimation(symbol)) ipvsRuns = t.perCpu;
    t.perCpu.forEach((h, cpu) => {
      if (!h || !h.count) return;
      timerRows.push({
        symbol,
        address: kernelAddressHex(t.key),
        kind: t.kind,
        cpu,
        count: h.count,
        totalNs: h.sum,
        maxNs: h.max,
        p99Ns: h.quantile(0.99),
      });
      if (!worstByCpu[cpu] || h.max > worstByCpu[cpu]!.durationNs) worstByCpu[cpu] = { culprit: symbol, durationNs: h.max };
    });
  }
  perCpuRows(histograms, 'ipvs_estimation', null, ipvsRuns);
  const top = inp.topTimers ?? 20;
  const byMax = [...timerRows].sort((a, b) => b.maxNs - a.maxNs).slice(0, top);
  const byTotal = [...timerRows].sort((a, b) => b.totalNs - a.totalNs).slice(0, top);

  const cpuSet = new Set<number>();
  const addCpus = (list: unknown[]) => list.forEach((v, cpu) => v && cpuSet.add(cpu));
  addCpus(agg.softirq);
  addCpus(agg.icmpCount);
  addCpus(agg.packetWait);
  addCpus(netRxRun);
  addCpus(ipvsRuns);
  addCpus(worstByCpu);
  const stat = (h: Histogram | undefined, f: 'p99' | 'max') => (!h?.count ? null : f === 'max' ? h.max : h.quantile(0.99));
  const cpus: CpuSummary[] = [...cpuSet]
    .sort((a, b) => a - b)
    .map((cpu) => ({
      cpu,
      netRxWaitP99: stat(netRxWait[cpu], 'p99'),
      netRxWaitMax: stat(netRxWait[cpu], 'max'),
      netRxRunP99: stat(netRxRun[cpu], 'p99'),
      netRxRunMax: stat(netRxRun[cpu], 'max'),
      timerSoftirqMax: stat(agg.softirq[cpu]?.[TIMER_SOFTIRQ], 'max'),
      hrtimerSoftirqMax: stat(agg.softirq[cpu]?.[HRTIMER_SOFTIRQ], 'max'),
      ipvsMax: stat(ipvsRuns[cpu], 'max'),
      packetWaitP99: stat(agg.packetWait[cpu], 'p99'),
      packetWaitMax: stat(agg.packetWait[cpu], 'max'),
      icmp: agg.icmpCount[cpu] ?? 0,
      stealNs: agg.stealNs[cpu] ?? 0,
      pauseMax: stat(agg.pauses[cpu], 'max'),
      worst: worstByCpu[cpu] ?? null,
    }));

  const slowest = agg.icmp
    .filter((p) => p.waitNs !== null)
    .sort((a, b) => b.waitNs! - a.waitNs!)
    .slice(0, 20);

  const stallRows: StallRow[] = stalls.map((s) => ({
    cpu: s.cpu,
    kind: s.kind,
    culprit: stallCulprit(s, k),
    startNs: s.startNs,
    durationNs: s.durationNs,
  }));
  const index = indexStalls(stallRows);
  const slow = attributePackets(agg.slowPackets(), index);
  const receive = attributeReceiveStalls(agg.receiveStalls(), index);
  const durationNs = (inp.endWall.getTime() - inp.start.wall.getTime()) * 1e6;
  const verdict = packetVerdict(slow, stallRows, agg.slowPacketNs / 1e6, inp.facts ?? NO_HOST_FACTS, { perCpuNs: agg.stealNs, durationNs }, receive);

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
    cpus,
    histograms,
    timers: { byMax, byTotal },
    packets: {
      slowThresholdNs: agg.slowPacketNs,
      slow,
      slowNotKept: agg.slowPacketsNotKept,
      waitUnknown: agg.packetWaitUnknown.reduce((a, b) => a + (b ?? 0), 0),
    },
    icmp: {
      perCpu: agg.icmpCount.map((count, cpu) => ({ cpu, count })).filter((r) => r.count),
      packets: agg.icmp.slice(), // a copy: the aggregator goes on (top, serve)
      packetsNotKept: agg.icmpNotKept,
      slowest,
    },
    stalls: { thresholdNs: agg.stallThresholdNs, rows: stallRows, notKept: agg.stallsNotKept },
    receive: { thresholdNs: agg.slowPacketNs, stalls: receive, notKept: agg.receiveStallsNotKept },
    ...(agg.series ? { series: seriesSection(agg.series, (key) => symbolOf(k, key)) } : {}),
  };
}
