// The summary of a trace, or of an interval of one: per-CPU figures, timer
// callbacks, stalls, slow packets and receive stalls with what explains each,
// and every histogram as it was counted (streamed, kernel-counted, or both).
// Live views read this each refresh (top draws it, serve folds it into
// Prometheus); a report is this plus its metadata, histogram rows, the ICMP
// listing, time series and the verdict (report/model.ts). Reading changes
// nothing in the aggregator.
import { kernelAddressHex } from '../base/address';
import { isIpvsEstimation } from '../base/host-facts';
import { Kallsyms } from '../host/kallsyms';
import { Func, HRTIMER_SOFTIRQ, NET_RX_SOFTIRQ, SOFTIRQ_NAMES, TIMER_SOFTIRQ } from '../kernel/abi';
import { isDirect } from '../kernel/ladder';
import { ProbeName, ProbeStatus } from '../kernel/probes';
import { HostFacts } from '../base/host-facts';
import { packetVerdict, PacketVerdict } from './verdict';
import { attributeWakeups, WakeupRow } from './wakeup';
import {
  attributePackets,
  attributeReceiveStalls,
  indexStalls,
  PAUSE_CULPRIT,
  ReceiveStallRow,
  selfCulprit,
  SlowPacket,
  StallRow,
  taskCulprit,
} from './attribute';
import { Aggregator, Stall } from '../stream/aggregate';
import { Histogram, HistogramSummary, Log2Bucket } from '../stream/histogram';
import { KernelHist, KernelTable, toHistogram } from '../stream/kernel-histogram';

export interface HistogramRow extends HistogramSummary {
  probe: ProbeName | 'softirq_wait' | 'pause';
  cpu: number | null; // null: all CPUs merged
  key: string | null;
  unit: 'ns';
  buckets: Log2Bucket[];
}

export interface TimerRow {
  symbol: string;
  address: string;
  kind: 'timer' | 'hrtimer';
  cpu: number;
  count: number;
  totalNs: number;
  maxNs: number;
  p99Ns: number;
}

/** One CPU's headline figures, in ns (null: nothing measured). */
export interface CpuSummary {
  cpu: number;
  netRxWaitP99: number | null;
  netRxWaitMax: number | null;
  /** net_rx_action by fentry/kprobe where traced so, else the NET_RX softirq. */
  netRxRunP99: number | null;
  netRxRunMax: number | null;
  timerSoftirqMax: number | null;
  hrtimerSoftirqMax: number | null;
  ipvsMax: number | null;
  /** Every received packet's wait from arrival to processing on this CPU. */
  packetWaitP99: number | null;
  packetWaitMax: number | null;
  icmp: number;
  /** Time the hypervisor took from this CPU (VMs), ns. */
  stealNs: number;
  /** The longest host pause (no timer interrupt) on this CPU; absent in reports before pauses were traced. */
  pauseMax?: number | null;
  /** The longest timer callback run on this CPU. */
  worst: { culprit: string; durationNs: number } | null;
}

/** One histogram on one CPU, as counted: streamed events, the kernel's own buckets, or both. */
export interface HistogramSource {
  probe: HistogramRow['probe'];
  cpu: number;
  /** Softirq vector name, callback symbol; null for the per-CPU probes. */
  key: string | null;
  streamed?: Histogram;
  kernel?: KernelHist;
  /** Both as one Histogram (the kernel's counts at its buckets' middles): what views and quantiles read. */
  histogram: Histogram;
}

export interface TraceSummary {
  cpus: CpuSummary[];
  timers: { byMax: TimerRow[]; byTotal: TimerRow[] };
  stalls: { thresholdNs: number; rows: StallRow[]; notKept: number };
  packets: { slowThresholdNs: number; slow: SlowPacket[]; slowNotKept: number; waitUnknown: number };
  receive: { thresholdNs: number; stalls: ReceiveStallRow[]; notKept: number };
  /** Tasks woken by receive processing: slow wake-ups and stolen runs, each explained. */
  wakeups: { thresholdNs: number; slow: WakeupRow[]; notKept: number };
  histograms: HistogramSource[];
}

export interface SummaryContext {
  probes: Record<ProbeName, ProbeStatus>;
  kallsyms?: Kallsyms;
  /** Timer rows kept in each list (default 20). */
  topTimers?: number;
}

export function symbolOf(k: Kallsyms | undefined, key52: number): string {
  return k?.resolve(key52) ?? kernelAddressHex(key52);
}

/** A kernel address as a summary shows it: its symbol (else the address), the address, and whether it is IPVS's estimator. */
interface Named {
  symbol: string;
  address: string;
  ipvs: boolean;
}

/** Every address a summary names, looked up in one pass. */
function nameAddresses(k: Kallsyms | undefined, keys: number[]): Map<number, Named> {
  k?.resolveAll(keys);
  const out = new Map<number, Named>();
  for (const key of keys) {
    if (out.has(key)) continue;
    const address = kernelAddressHex(key);
    const symbol = k?.resolve(key) ?? address;
    out.set(key, { symbol, address, ipvs: isIpvsEstimation(symbol) });
  }
  return out;
}

/** A stall's culprit by name: "TIMER softirq", a callback's symbol, the pause, or a task as comm[pid]. */
function stallCulprit(s: Stall, names: Map<number, Named>): string {
  if (s.kind === 'softirq') return `${SOFTIRQ_NAMES[s.key]} softirq`;
  if (s.kind === 'pause') return PAUSE_CULPRIT;
  if (s.kind === 'task') return taskCulprit(s.label ?? '?', s.key);
  if (s.kind === 'self') return selfCulprit(s.key);
  return names.get(s.key)!.symbol;
}

/** Counts in one Histogram (a new one when the kernel counted some: at its buckets' middles). */
function asOne(s: { streamed?: Histogram; kernel?: KernelHist }): Histogram {
  if (!s.kernel) return s.streamed ?? new Histogram();
  const h = toHistogram(s.kernel);
  return s.streamed ? h.merge(s.streamed) : h;
}

/** Per CPU, the streamed histograms of a table and what the kernel counted for it. */
function sources(agg: Aggregator, table: KernelTable, key: number): { streamed?: Histogram; kernel?: KernelHist }[] {
  const out: { streamed?: Histogram; kernel?: KernelHist }[] = [];
  const streamed = (cpu: number) =>
    table === 'softirq'
      ? agg.softirq[cpu]?.[key]
      : table === 'softirqWait'
        ? agg.softirqWait[cpu]?.[key]
        : table === 'func'
          ? agg.funcs[key]?.[cpu]
          : undefined;
  const cpus =
    table === 'func'
      ? (agg.funcs[key] ?? []).map((_, c) => c)
      : table === 'packetWait' || table === 'wakeupWait'
        ? []
        : (table === 'softirq' ? agg.softirq : agg.softirqWait).map((_, c) => c);
  for (const cpu of cpus) {
    const h = streamed(cpu);
    if (h?.count) out[cpu] = { streamed: h };
  }
  for (const e of agg.kernel.entries(table)) if (e.key === key && e.hist.count) (out[e.cpu] ??= {}).kernel = e.hist;
  return out;
}

/** One histogram as counted, on one CPU, and as one Histogram; `timer`: a callback's address, named later. */
interface Counted extends HistogramSource {
  timer?: number;
}

function push(out: Counted[], probe: HistogramRow['probe'], key: string | null, list: { streamed?: Histogram; kernel?: KernelHist }[], timer?: number): void {
  list.forEach(
    (s, cpu) =>
      s && (s.streamed?.count || s.kernel?.count) && out.push({ probe, cpu, key, ...(timer === undefined ? {} : { timer }), ...s, histogram: asOne(s) }),
  );
}

/** Every histogram of the trace, per CPU, in the report's row order (IPVS's estimator, known by name only later, last). */
function countedHistograms(agg: Aggregator, ctx: SummaryContext): Counted[] {
  const out: Counted[] = [];
  const list = (hs: (Histogram | undefined)[]) => hs.map((h) => (h?.count ? { streamed: h } : undefined)) as { streamed?: Histogram }[];
  for (let vec = 0; vec < SOFTIRQ_NAMES.length; vec++) {
    push(out, 'softirq', SOFTIRQ_NAMES[vec], sources(agg, 'softirq', vec));
    push(out, 'softirq_wait', SOFTIRQ_NAMES[vec], sources(agg, 'softirqWait', vec));
  }
  const netRx = ctx.probes.net_rx_action;
  if (netRx?.active) push(out, 'net_rx_action', null, isDirect(netRx.via) ? sources(agg, 'func', Func.NET_RX_ACTION) : sources(agg, 'softirq', NET_RX_SOFTIRQ));
  if (ctx.probes.net_rx_wait?.active) push(out, 'net_rx_wait', null, sources(agg, 'softirqWait', NET_RX_SOFTIRQ));
  push(out, 'icmp_rcv', null, list(agg.icmpWait));
  push(out, 'packet_wait', null, sources(agg, 'packetWait', 0));
  push(out, 'pause', null, list(agg.pauses));
  push(out, 'wakeup', null, sources(agg, 'wakeupWait', 0));
  for (const t of agg.timers.values()) push(out, 'timer_callbacks', null, list(t.perCpu), t.key);
  // fentry/kprobe runs of estimation_timer (kept even if ip_vs went away since); without them, its runs as a timer callback (named below)
  if (agg.funcs[Func.ESTIMATION_TIMER]) push(out, 'ipvs_estimation', null, list(agg.funcs[Func.ESTIMATION_TIMER]));
  return out;
}

/**
 * The counted histograms with their callbacks named, each as one Histogram
 * too. Without a direct probe of IPVS's estimator, the callback named as it
 * stands for its runs (the last so named, if several).
 */
function histogramSources(counted: Counted[], names: Map<number, Named>, ctx: SummaryContext, directIpvs: boolean): HistogramSource[] {
  let ipvsTimer: number | undefined;
  const out = counted.map((c): Counted => {
    if (c.timer === undefined) return c;
    if (!directIpvs && ctx.probes.ipvs_estimation?.active && names.get(c.timer)!.ipvs) ipvsTimer = c.timer;
    return { ...c, key: names.get(c.timer)!.symbol };
  });
  const ipvs = ipvsTimer === undefined ? [] : out.filter((s) => s.timer === ipvsTimer).map((s) => ({ ...s, probe: 'ipvs_estimation' as const, key: null }));
  return [...out, ...ipvs].map(({ timer: _, ...s }) => s);
}

function timerRows(agg: Aggregator, names: Map<number, Named>): TimerRow[] {
  const rows: TimerRow[] = [];
  for (const t of agg.timers.values()) {
    const { symbol, address } = names.get(t.key)!;
    t.perCpu.forEach((h, cpu) => {
      if (h?.count) rows.push({ symbol, address, kind: t.kind, cpu, count: h.count, totalNs: h.sum, maxNs: h.max, p99Ns: h.quantile(0.99) });
    });
  }
  return rows;
}

function cpuSummaries(agg: Aggregator, hs: HistogramSource[], timers: TimerRow[]): CpuSummary[] {
  const merged = new Map<string, Histogram>();
  for (const s of hs) if (s.probe !== 'timer_callbacks') merged.set(`${s.probe}/${s.key}/${s.cpu}`, s.histogram);
  const at = (probe: HistogramRow['probe'], cpu: number, key: string | null = null) => merged.get(`${probe}/${key}/${cpu}`);
  const stat = (h: Histogram | undefined, f: 'p99' | 'max') => (!h?.count ? null : f === 'max' ? h.max : h.quantile(0.99));
  const worst: CpuSummary['worst'][] = [];
  for (const t of timers) if (!worst[t.cpu] || t.maxNs > worst[t.cpu]!.durationNs) worst[t.cpu] = { culprit: t.symbol, durationNs: t.maxNs };
  const cpus = new Set<number>(
    hs.filter((s) => s.probe !== 'softirq_wait' && s.probe !== 'pause' && s.probe !== 'net_rx_wait' && s.probe !== 'wakeup').map((s) => s.cpu),
  );
  agg.icmpCount.forEach((n, cpu) => n && cpus.add(cpu));
  return [...cpus]
    .sort((a, b) => a - b)
    .map((cpu) => ({
      cpu,
      netRxWaitP99: stat(at('net_rx_wait', cpu), 'p99'),
      netRxWaitMax: stat(at('net_rx_wait', cpu), 'max'),
      netRxRunP99: stat(at('net_rx_action', cpu), 'p99'),
      netRxRunMax: stat(at('net_rx_action', cpu), 'max'),
      timerSoftirqMax: stat(at('softirq', cpu, SOFTIRQ_NAMES[TIMER_SOFTIRQ]), 'max'),
      hrtimerSoftirqMax: stat(at('softirq', cpu, SOFTIRQ_NAMES[HRTIMER_SOFTIRQ]), 'max'),
      ipvsMax: stat(at('ipvs_estimation', cpu), 'max'),
      packetWaitP99: stat(at('packet_wait', cpu), 'p99'),
      packetWaitMax: stat(at('packet_wait', cpu), 'max'),
      icmp: agg.icmpCount[cpu] ?? 0,
      stealNs: agg.stealNs[cpu] ?? 0,
      pauseMax: stat(at('pause', cpu), 'max'),
      worst: worst[cpu] ?? null,
    }));
}

/**
 * In three steps, each a layer down once: every histogram as one Histogram
 * (stream/), every kernel address named (host/), then attribution and the
 * rows, from those alone.
 */
export function summarize(agg: Aggregator, ctx: SummaryContext): TraceSummary {
  const stalls = agg.stalls();
  const counted = countedHistograms(agg, ctx);
  const names = nameAddresses(ctx.kallsyms, [...agg.timers.keys(), ...stalls.filter((s) => s.kind === 'timer' || s.kind === 'hrtimer').map((s) => s.key)]);
  const histograms = histogramSources(counted, names, ctx, agg.funcs[Func.ESTIMATION_TIMER] !== undefined);
  const rows = timerRows(agg, names);
  const top = ctx.topTimers ?? 20;
  const stallRows: StallRow[] = stalls.map((s) => ({
    cpu: s.cpu,
    kind: s.kind,
    culprit: stallCulprit(s, names),
    startNs: s.startNs,
    durationNs: s.durationNs,
  }));
  const index = indexStalls(stallRows);
  return {
    cpus: cpuSummaries(agg, histograms, rows),
    timers: { byMax: [...rows].sort((a, b) => b.maxNs - a.maxNs).slice(0, top), byTotal: [...rows].sort((a, b) => b.totalNs - a.totalNs).slice(0, top) },
    stalls: { thresholdNs: agg.stallThresholdNs, rows: stallRows, notKept: agg.stallsNotKept },
    packets: {
      slowThresholdNs: agg.slowPacketNs,
      slow: attributePackets(agg.slowPackets(), index),
      slowNotKept: agg.slowPacketsNotKept,
      waitUnknown: agg.packetWaitUnknown.reduce((a, b) => a + (b ?? 0), 0),
    },
    receive: { thresholdNs: agg.slowPacketNs, stalls: attributeReceiveStalls(agg.receiveStalls(), index), notKept: agg.receiveStallsNotKept },
    wakeups: { thresholdNs: agg.slowWakeupNs, slow: attributeWakeups(agg.wakeups(), stallRows, index), notKept: agg.wakeupsNotKept },
    histograms,
  };
}

/** A histogram's report row (its summary and power-of-two buckets). */
export function histogramRow(probe: HistogramRow['probe'], cpu: number | null, key: string | null, h: Histogram): HistogramRow {
  return { probe, cpu, key, unit: 'ns', ...h.summary(), buckets: h.log2Buckets() };
}

/** The report's histogram rows: each source per CPU, then one merged (cpu: null) row per probe and key. */
export function histogramRows(hs: HistogramSource[]): HistogramRow[] {
  const out: HistogramRow[] = [];
  const groups = new Map<string, HistogramSource[]>();
  for (const s of hs) {
    const id = `${s.probe}/${s.key}`;
    const g = groups.get(id);
    if (g) g.push(s);
    else groups.set(id, [s]);
  }
  for (const g of groups.values()) {
    const all = new Histogram();
    for (const s of g) {
      out.push(histogramRow(s.probe, s.cpu, s.key, s.histogram));
      all.merge(s.histogram);
    }
    if (all.count) out.push(histogramRow(g[0].probe, null, g[0].key, all));
  }
  return out;
}

/** The verdict over a summary's slow packets and receive stalls; `durationNs` weighs the host's steal. */
export function summaryVerdict(sum: TraceSummary, agg: Aggregator, facts: HostFacts, durationNs: number): PacketVerdict {
  return packetVerdict(
    sum.packets.slow,
    sum.stalls.rows,
    agg.slowPacketNs / 1e6,
    facts,
    { perCpuNs: agg.stealNs, durationNs },
    sum.receive.stalls,
    sum.wakeups.slow,
    agg.slowWakeupNs / 1e6,
  );
}
