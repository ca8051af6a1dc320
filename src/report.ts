// The histogram JSON report (jitterscope.report/v1, schema/report.v1.json),
// its atomic writer, and the bpftrace-style text rendering.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SOFTIRQ_NAMES, NET_RX_SOFTIRQ, hexAddress, Func } from './abi';
import { Aggregator, IcmpPacket } from './aggregate';
import { Histogram, HistogramSummary, Log2Bucket } from './histogram';
import { Kallsyms } from './kallsyms';
import { ProbeName, ProbeStatus, IPVS_SYMBOL } from './probes';
import { UsageError } from './errors';

export const REPORT_SCHEMA_ID = 'jitterscope.report/v1';

export interface HistogramRow extends HistogramSummary {
  probe: ProbeName | 'softirq_wait';
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

export interface StallRow {
  cpu: number;
  kind: string;
  culprit: string;
  startNs: number;
  durationNs: number;
}

export interface Report {
  schema: typeof REPORT_SCHEMA_ID;
  meta: {
    tool: { name: 'jitterscope'; version: string };
    host: string;
    kernel: string;
    command: string[];
    startTime: string;
    endTime: string;
    durationMs: number;
    clock: { source: 'CLOCK_MONOTONIC'; startNs: number; realtimeOffsetNs: number };
    cpus: { possible: number; traced: number[] | 'all' };
    probes: Record<string, ProbeStatus>;
    drops: { total: number; perCpu: number[] };
    events: Aggregator['events'] & { total: number };
    notes: string[];
  };
  histograms: HistogramRow[];
  timers: { byMax: TimerRow[]; byTotal: TimerRow[] };
  icmp: {
    perCpu: { cpu: number; count: number }[];
    packets: IcmpPacket[];
    packetsNotKept: number;
    slowest: IcmpPacket[];
  };
  stalls: { thresholdNs: number; rows: StallRow[]; notKept: number };
  /** Only in reports of `jitterscope ping`. */
  ping?: import('./ping').PingSection;
}

export interface ReportInput {
  aggregator: Aggregator;
  probes: Record<ProbeName, ProbeStatus>;
  notes: string[];
  drops: { total: number; perCpu: number[] };
  kallsyms?: Kallsyms;
  startWall: Date;
  endWall: Date;
  startMonoNs: number;
  realtimeOffsetNs: number;
  possibleCpus: number;
  tracedCpus?: number[];
  command: string[];
  version: string;
  topTimers?: number;
}

function row(probe: HistogramRow['probe'], cpu: number | null, key: string | null, h: Histogram): HistogramRow {
  return { probe, cpu, key, unit: 'ns', ...h.summary(), buckets: h.log2Buckets() };
}

/** Adds per-CPU rows and one merged (cpu: null) row for a per-CPU histogram list. */
function perCpuRows(out: HistogramRow[], probe: HistogramRow['probe'], key: string | null, list: (Histogram | undefined)[]): void {
  const all = new Histogram();
  list.forEach((h, cpu) => {
    if (!h || !h.count) return;
    out.push(row(probe, cpu, key, h));
    all.merge(h);
  });
  if (all.count) out.push(row(probe, null, key, all));
}

export function timerSymbol(k: Kallsyms | undefined, key: number, hi: number, lo: number): string {
  return k?.resolve(key) ?? hexAddress(hi, lo);
}

export function buildReport(inp: ReportInput): Report {
  const agg = inp.aggregator;
  const k = inp.kallsyms;
  const histograms: HistogramRow[] = [];
  const column = (table: (Histogram | undefined)[][], vec: number) => table.map((r) => r?.[vec]);

  for (let vec = 0; vec < SOFTIRQ_NAMES.length; vec++) {
    perCpuRows(histograms, 'softirq', SOFTIRQ_NAMES[vec], column(agg.softirq, vec));
    perCpuRows(histograms, 'softirq_wait', SOFTIRQ_NAMES[vec], column(agg.softirqWait, vec));
  }
  const direct = (p: ProbeName) => /^(fentry|kprobe)/.test(inp.probes[p]?.mode ?? '');
  if (inp.probes.net_rx_action?.active)
    perCpuRows(histograms, 'net_rx_action', null, direct('net_rx_action') ? agg.funcs[Func.NET_RX_ACTION] ?? [] : column(agg.softirq, NET_RX_SOFTIRQ));
  // fentry/kprobe runs of estimation_timer, kept even if ip_vs went away since;
  // without them (below), its runs as a timer callback
  const ipvsRuns = agg.funcs[Func.ESTIMATION_TIMER];
  if (ipvsRuns) perCpuRows(histograms, 'ipvs_estimation', null, ipvsRuns);
  if (inp.probes.net_rx_wait?.active) perCpuRows(histograms, 'net_rx_wait', null, column(agg.softirqWait, NET_RX_SOFTIRQ));
  perCpuRows(histograms, 'icmp_rcv', null, agg.icmpWait);

  const timerRows: TimerRow[] = [];
  const stalls = agg.stalls();
  k?.resolveAll([...agg.timers.keys(), ...stalls.filter((s) => s.kind !== 'softirq').map((s) => s.key)]);
  for (const t of agg.timers.values()) {
    const symbol = timerSymbol(k, t.key, t.hi, t.lo);
    perCpuRows(histograms, 'timer_callbacks', symbol, t.perCpu);
    if (!ipvsRuns && inp.probes.ipvs_estimation?.active && (symbol === IPVS_SYMBOL || symbol.startsWith(IPVS_SYMBOL + ' ')))
      perCpuRows(histograms, 'ipvs_estimation', null, t.perCpu);
    t.perCpu.forEach((h, cpu) => {
      if (!h || !h.count) return;
      timerRows.push({
        symbol,
        address: hexAddress(t.hi, t.lo),
        kind: t.kind,
        cpu,
        count: h.count,
        totalNs: h.sum,
        maxNs: h.max,
        p99Ns: h.quantile(0.99),
      });
    });
  }
  const top = inp.topTimers ?? 20;
  const byMax = [...timerRows].sort((a, b) => b.maxNs - a.maxNs).slice(0, top);
  const byTotal = [...timerRows].sort((a, b) => b.totalNs - a.totalNs).slice(0, top);

  const slowest = agg.packets
    .filter((p) => p.waitNs !== null)
    .sort((a, b) => b.waitNs! - a.waitNs!)
    .slice(0, 20);

  const stallRows: StallRow[] = stalls.map((s) => ({
    cpu: s.cpu,
    kind: s.kind,
    culprit:
      s.kind === 'softirq' ? `${SOFTIRQ_NAMES[s.key]} softirq` : timerSymbol(k, s.key, s.keyHi, s.key % 4294967296),
    startNs: s.startNs,
    durationNs: s.durationNs,
  }));

  return {
    schema: REPORT_SCHEMA_ID,
    meta: {
      tool: { name: 'jitterscope', version: inp.version },
      host: os.hostname(),
      kernel: os.release(),
      command: inp.command,
      startTime: inp.startWall.toISOString(),
      endTime: inp.endWall.toISOString(),
      durationMs: inp.endWall.getTime() - inp.startWall.getTime(),
      clock: { source: 'CLOCK_MONOTONIC', startNs: inp.startMonoNs, realtimeOffsetNs: inp.realtimeOffsetNs },
      cpus: { possible: inp.possibleCpus, traced: inp.tracedCpus ?? 'all' },
      probes: inp.probes,
      drops: inp.drops,
      events: { ...agg.events, total: agg.totalEvents },
      notes: inp.notes,
    },
    histograms,
    timers: { byMax, byTotal },
    icmp: {
      perCpu: agg.icmpCount.map((count, cpu) => ({ cpu, count })).filter((r) => r.count),
      packets: agg.packets,
      packetsNotKept: agg.packetsNotKept,
      slowest,
    },
    stalls: { thresholdNs: agg.stallThresholdNs, rows: stallRows, notKept: agg.stallsNotKept },
  };
}

/** Fails early (before anything is traced) if `file` cannot be written later. */
export function checkWritable(file: string): void {
  const dir = path.dirname(path.resolve(file));
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new UsageError(`--out ${file}: directory ${dir} does not exist; create it or choose another path`);
  }
  if (!st.isDirectory()) throw new UsageError(`--out ${file}: ${dir} is not a directory`);
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch {
    throw new UsageError(`--out ${file}: directory ${dir} is not writable`);
  }
  try {
    if (fs.statSync(file).isDirectory()) throw new UsageError(`--out ${file}: is a directory; give a file name`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** Writes via a temporary file in the same directory and rename(2): never a partial file. */
export function writeAtomic(file: string, text: string): void {
  const tmp = path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    const fd = fs.openSync(tmp, 'w', 0o644);
    try {
      fs.writeSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

// ---- text rendering --------------------------------------------------------

const UNITS: [number, string][] = [
  [1e9, 's'],
  [1e6, 'ms'],
  [1e3, 'us'],
  [1, 'ns'],
];

export function fmtNs(ns: number): string {
  for (const [div, unit] of UNITS) {
    if (ns >= div) {
      const v = ns / div;
      return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)}${unit}`;
    }
  }
  return `${ns}ns`;
}

/** Bucket bound as bpftrace prints them: 512, 1K, 2M (binary multiples). */
function fmtBound(v: number): string {
  const sfx = ['', 'K', 'M', 'G', 'T', 'P'];
  let i = 0;
  while (v >= 1024 && v % 1024 === 0 && i < sfx.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v}${sfx[i]}`;
}

export function renderHistogram(title: string, buckets: Log2Bucket[], width = 52): string {
  const lines = [`${title}:`];
  const max = Math.max(1, ...buckets.map((b) => b.count));
  for (const b of buckets) {
    const range = `[${fmtBound(b.lo)}, ${fmtBound(b.hi)})`;
    const bar = '@'.repeat(Math.round((b.count / max) * width));
    lines.push(`${range.padEnd(20)}${String(b.count).padStart(8)} |${bar.padEnd(width)}|`);
  }
  return lines.join('\n');
}

/** Aligned columns: those in `left` left-aligned, the others right-aligned. */
export function table(head: string[], rows: string[][], left: number[] = [0]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (left.includes(i) ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

/** One CPU's figures for the given window, in ns (null: nothing measured). */
export interface CpuSummary {
  cpu: number;
  netRxWaitP99: number | null;
  netRxWaitMax: number | null;
  netRxRunP99: number | null;
  netRxRunMax: number | null;
  timerSoftirqMax: number | null;
  hrtimerSoftirqMax: number | null;
  ipvsMax: number | null;
  icmp: number;
  /** The longest timer callback run on this CPU. */
  worst: { culprit: string; durationNs: number } | null;
}

export function cpuSummaries(r: Report): CpuSummary[] {
  const cpus = new Set<number>();
  for (const h of r.histograms) if (h.cpu !== null) cpus.add(h.cpu);
  for (const c of r.icmp.perCpu) cpus.add(c.cpu);
  const index = new Map<string, HistogramRow>();
  for (const h of r.histograms) if (h.cpu !== null) index.set(`${h.probe}|${h.key}|${h.cpu}`, h);
  const get = (probe: string, key: string | null, cpu: number, f: 'p99' | 'max') => index.get(`${probe}|${key}|${cpu}`)?.[f] ?? null;
  return [...cpus]
    .sort((a, b) => a - b)
    .map((cpu) => {
      let worst: CpuSummary['worst'] = null;
      for (const h of r.histograms)
        if (h.probe === 'timer_callbacks' && h.cpu === cpu && (!worst || h.max > worst.durationNs))
          worst = { culprit: h.key ?? '?', durationNs: h.max };
      return {
        cpu,
        netRxWaitP99: get('net_rx_wait', null, cpu, 'p99'),
        netRxWaitMax: get('net_rx_wait', null, cpu, 'max'),
        netRxRunP99: get('net_rx_action', null, cpu, 'p99') ?? get('softirq', 'NET_RX', cpu, 'p99'),
        netRxRunMax: get('net_rx_action', null, cpu, 'max') ?? get('softirq', 'NET_RX', cpu, 'max'),
        timerSoftirqMax: get('softirq', 'TIMER', cpu, 'max'),
        hrtimerSoftirqMax: get('softirq', 'HRTIMER', cpu, 'max'),
        ipvsMax: get('ipvs_estimation', null, cpu, 'max'),
        icmp: r.icmp.perCpu.find((c) => c.cpu === cpu)?.count ?? 0,
        worst,
      };
    });
}

export const CPU_TABLE_HEAD = ['CPU', 'NET_RX wait p99', 'max', 'NET_RX run p99', 'max', 'TIMER max', 'HRTIMER max', 'ipvs_est max', 'ICMP', 'longest callback'];

/** The cells of one CPU row, as text. */
export function cpuCells(c: CpuSummary): string[] {
  const ns = (v: number | null) => (v === null ? '-' : fmtNs(v));
  return [
    String(c.cpu),
    ns(c.netRxWaitP99),
    ns(c.netRxWaitMax),
    ns(c.netRxRunP99),
    ns(c.netRxRunMax),
    ns(c.timerSoftirqMax),
    ns(c.hrtimerSoftirqMax),
    ns(c.ipvsMax),
    String(c.icmp),
    c.worst ? `${c.worst.culprit} ${fmtNs(c.worst.durationNs)}` : '-',
  ];
}

export function cpuTableText(r: Report): string {
  return table(CPU_TABLE_HEAD, cpuSummaries(r).map(cpuCells), [0, CPU_TABLE_HEAD.length - 1]);
}

export function renderText(r: Report): string {
  const m = r.meta;
  const out: string[] = [];
  out.push(
    `jitterscope ${m.tool.version} on ${m.host} (${m.kernel}), ${(m.durationMs / 1000).toFixed(1)} s from ${m.startTime}`,
  );
  out.push(`events: ${m.events.total}  drops: ${m.drops.total}${m.drops.total ? '  (ring buffer was full: figures undercount)' : ''}`);
  out.push('');
  out.push('probes:');
  for (const [name, p] of Object.entries(m.probes))
    out.push(`  ${name.padEnd(16)} ${p.active ? p.mode : 'inactive'}${p.reason ? ` — ${p.reason}` : ''}`);
  for (const n of m.notes) out.push(`note: ${n}`);

  out.push('');
  out.push(cpuTableText(r));

  if (r.timers.byMax.length) {
    out.push('');
    out.push('timer callbacks, longest first:');
    out.push(
      table(
        ['callback', 'kind', 'CPU', 'count', 'p99', 'max', 'total'],
        r.timers.byMax
          .slice(0, 10)
          .map((t) => [t.symbol, t.kind, String(t.cpu), String(t.count), fmtNs(t.p99Ns), fmtNs(t.maxNs), fmtNs(t.totalNs)]),
      ),
    );
  }

  const find = (probe: string, key: string | null) => r.histograms.filter((h) => h.probe === probe && h.key === key);
  for (const h of find('net_rx_wait', null).filter((h) => h.cpu !== null)) {
    out.push('');
    out.push(renderHistogram(`@net_rx_wait_ns[cpu ${h.cpu}]`, h.buckets));
  }
  for (const t of r.timers.byMax.slice(0, 3)) {
    const h = find('timer_callbacks', t.symbol).find((x) => x.cpu === t.cpu);
    if (h) {
      out.push('');
      out.push(renderHistogram(`@timer_ns[${t.symbol}, cpu ${t.cpu}]`, h.buckets));
    }
  }
  if (r.icmp.packets.length || r.icmp.packetsNotKept) {
    out.push('');
    const per = r.icmp.perCpu.map((c) => `cpu ${c.cpu}: ${c.count}`).join(', ');
    out.push(`ICMP packets: ${per}`);
    const slow = r.icmp.slowest.slice(0, 5);
    for (const p of slow)
      out.push(
        `  ${p.saddr} -> ${p.daddr} type ${p.type} id ${p.id} seq ${p.seq}: waited ${fmtNs(p.waitNs ?? 0)} (arrived cpu ${p.arrivalCpu}, processed cpu ${p.cpu})`,
      );
  }
  if (r.stalls.rows.length) {
    out.push('');
    const longest = [...r.stalls.rows].sort((a, b) => b.durationNs - a.durationNs).slice(0, 5);
    out.push(`stalls of ${fmtNs(r.stalls.thresholdNs)} or more: ${r.stalls.rows.length}; longest:`);
    for (const s of longest) out.push(`  cpu ${s.cpu}  ${s.culprit}  ${fmtNs(s.durationNs)}`);
  }
  return out.join('\n') + '\n';
}
