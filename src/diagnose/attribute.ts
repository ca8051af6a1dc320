// The attribution engine: which timer callback or softirq ran on a packet's
// CPU(s) while it waited. One engine, two uses: a slow packet seen on the
// receiving node (record, top), and a ping reply (the request and reply
// packets together). Pure logic: no kernel here.
//
// The shapes, from the stream up: a Stall is a run as recorded (its key an
// address, vector or pid); a StallRow is that run named (its culprit); a
// StallEvent is a row with the softirq it ran in (a stalls log lists each
// once). A ReceiveStall (a late NET_RX run, as recorded) becomes a
// ReceiveStallRow with its attribution, as a Packet becomes a SlowPacket and
// a Wakeup a WakeupRow (wakeup.ts). A culprit is a CulpritId (kind, name
// and CPU): rows, overlaps, and ping's and the verdict's culprits extend it,
// and culpritKey() is the one key that groups its runs.
import { Packet, ReceiveStall, StallKind } from '../stream/aggregate';

/**
 * Who held a CPU: the kind of run, its name and the CPU. Every culprit shape
 * (a stall row, an overlap, ping's and the verdict's culprit) is one of these
 * with its figures; culpritKey() groups by it.
 */
export interface CulpritId {
  kind: StallKind;
  /** "NET_RX softirq", "bpf_timer_cb", "estimation_timer [ip_vs]", a task ("python3[812]"), or an address. */
  culprit: string;
  cpu: number;
}

/** A run of a softirq or timer callback long enough to matter, by name. */
export interface StallRow extends CulpritId {
  startNs: number;
  durationNs: number;
}

/** What a wait overlapped most: the culprit, how long it overlapped the wait, and how long its run was. */
export interface Overlap extends CulpritId {
  overlapMs: number;
  durationMs: number;
}

export interface EngineOptions {
  /** An overlap counts when at least this long... */
  minOverlapMs?: number;
  /** ...and at least this share of the wait it explains. */
  minShareOfWait?: number;
}

/** A stretch of time a packet spent waiting, and the CPUs it waited on. */
export interface WaitWindow {
  cpus: number[];
  from: number;
  to: number;
}

/**
 * The culprit of a pause: a hard hrtimer fired late, so its CPU took no timer
 * interrupt meanwhile. In a VM the host did not run the vCPU (steal accounting
 * often misses it); on bare metal something held interrupts off.
 */
export const PAUSE_CULPRIT = 'host pause or IRQs off';

/** A task as a culprit: comm[pid], as ps and top name it. */
export function taskCulprit(comm: string, pid: number): string {
  return `${comm}[${pid}]`;
}

/** The tracer's own process as what held a CPU: said apart, never a verdict's culprit. */
export function selfCulprit(pid: number): string {
  return `jitterscope itself (pid ${pid})`;
}

/** A task's stretch on a CPU: another task, or the tracer's own process. */
const taskLike = (k: StallKind) => k === 'task' || k === 'self';

/**
 * What is reported apart from a verdict's culprit: a host pause is not a run in
 * this kernel, and the tracer's own process is the observer, not the observed.
 */
export const isApart = (k: StallKind) => k === 'pause' || k === 'self';

/** A timer callback covering this much of its softirq's overlap is named instead of the softirq. */
const INNER_SHARE = 0.8;

/** Stalls by CPU, for repeated lookups. */
export type StallIndex = Map<number, StallRow[]>;

export function indexStalls(stalls: StallRow[]): StallIndex {
  const by: StallIndex = new Map();
  for (const s of stalls) (by.get(s.cpu) ?? by.set(s.cpu, []).get(s.cpu)!).push(s);
  return by;
}

/**
 * The runs that overlapped these windows (longest overlap first), and the one
 * that explains a wait of `waitMs` (null: unknown): a timer callback (or a
 * host pause) first, as the more specific answer than the softirq it ran in;
 * failing that, a softirq other than NET_RX, which is the packet's own
 * processing; failing that, a task that held the CPU while NET_RX waited for
 * ksoftirqd or a NAPI thread. A task's stretch also spans the interrupts,
 * softirqs and pauses on top of it, so a more specific answer comes first,
 * unless the task alone held the CPU longer than that answer explains.
 */
export function explainWait(windows: WaitWindow[], waitMs: number | null, stalls: StallIndex, opts: EngineOptions = {}) {
  const minOverlapMs = opts.minOverlapMs ?? 0.5;
  const minShare = opts.minShareOfWait ?? 0.25;
  const acc = new Map<string, Overlap>();
  for (const w of windows)
    for (const cpu of new Set(w.cpus))
      for (const s of stalls.get(cpu) ?? []) {
        const ov = Math.min(w.to, s.startNs + s.durationNs) - Math.max(w.from, s.startNs);
        if (ov <= 0) continue;
        const k = culpritKey({ kind: s.kind, culprit: s.culprit, cpu });
        const o = acc.get(k) ?? { culprit: s.culprit, kind: s.kind, cpu, overlapMs: 0, durationMs: 0 };
        o.overlapMs += ov / 1e6;
        o.durationMs = Math.max(o.durationMs, s.durationNs / 1e6);
        acc.set(k, o);
      }
  const overlaps = [...acc.values()].sort((a, b) => b.overlapMs - a.overlapMs);
  const explains = (o: Overlap) => o.overlapMs >= minOverlapMs && (waitMs === null || o.overlapMs >= minShare * waitMs);
  let attribution = overlaps.find((o) => o.kind !== 'softirq' && !taskLike(o.kind) && explains(o)) ?? null;
  if (!attribution) {
    const softirq = overlaps.find((o) => o.kind === 'softirq' && o.culprit !== 'NET_RX softirq' && explains(o));
    // a callback that filled most of that softirq's overlap is still the answer, even
    // when it alone falls just short of the share (its run sits inside the softirq's)
    const inner =
      softirq && overlaps.find((o) => o.kind !== 'softirq' && !taskLike(o.kind) && o.cpu === softirq.cpu && o.overlapMs >= INNER_SHARE * softirq.overlapMs);
    attribution = inner || softirq || overlaps.find((o) => taskLike(o.kind) && explains(o)) || null;
  }
  // A task's stretch spans what ran on top of it (softirqs and the timers in them) and the
  // pauses in it; the more specific answer stands only if it explains at least the time the
  // task held the CPU itself (a run of 2-4 ms pauses inside a 25 ms spin is not the culprit).
  const task = overlaps.find((o) => taskLike(o.kind) && explains(o));
  if (task && attribution && !taskLike(attribution.kind)) {
    const sum = (kinds: StallKind[]) => overlaps.filter((o) => o.cpu === task.cpu && kinds.includes(o.kind)).reduce((n, o) => n + o.overlapMs, 0);
    // callbacks mostly run inside their softirq's run: the larger of the two, not both
    const onTop = Math.max(sum(['softirq']), sum(['timer', 'hrtimer'])) + sum(['pause']);
    if (attribution.overlapMs < task.overlapMs - onTop) attribution = task;
  }
  return { overlaps, attribution };
}

/** A packet's [arrival, processing] window on the CPUs that touched it; `rttNs` stands in when the arrival was unseen. */
export function packetWindow(p: Packet, fallbackNs = 0): WaitWindow {
  const end = p.startNs + (p.waitNs ?? 0);
  return { cpus: [p.cpu, p.arrivalCpu], from: p.waitNs === null ? end - fallbackNs : p.startNs, to: end };
}

/**
 * How much of a wait host pauses covered (ns), as the trace saw them: the
 * longest such cover on any one of its CPUs (a CPU's pauses never overlap).
 * A pause may have begun before it was seen, so this is a lower bound.
 */
export function pausedNs(w: WaitWindow, stalls: StallRow[]): number {
  let most = 0;
  for (const cpu of new Set(w.cpus)) {
    let sum = 0;
    for (const s of stalls) if (s.kind === 'pause' && s.cpu === cpu) sum += Math.max(0, Math.min(w.to, s.startNs + s.durationNs) - Math.max(w.from, s.startNs));
    most = Math.max(most, sum);
  }
  return most;
}

export interface SlowPacket extends Packet {
  attribution: Overlap | null;
}

/** Each slow packet with the run that explains its wait, if any. */
export function attributePackets(packets: Packet[], stalls: StallIndex, opts: EngineOptions = {}): SlowPacket[] {
  return packets.map((p) => ({
    ...p,
    attribution: p.waitNs === null ? null : explainWait([packetWindow(p)], p.waitNs / 1e6, stalls, opts).attribution,
  }));
}

export interface ReceiveStallRow extends ReceiveStall {
  attribution: Overlap | null;
}

/** Each receive stall with what held its CPU from the raise to the run. */
export function attributeReceiveStalls(stalls: ReceiveStall[], index: StallIndex, opts: EngineOptions = {}): ReceiveStallRow[] {
  return stalls.map((r) => ({
    ...r,
    attribution: explainWait([{ cpus: [r.cpu], from: r.raiseNs, to: r.startNs }], r.waitNs / 1e6, index, opts).attribution,
  }));
}

export interface CulpritRuns {
  count: number;
  p50Ms: number;
  maxMs: number;
}

/** One culprit: the same run kind, name and CPU. */
export const culpritKey = (o: CulpritId) => `${o.kind}|${o.culprit}|${o.cpu}`;

/** How often a culprit ran long enough to be a stall row, the median and the longest of those runs. */
export function culpritRuns(o: CulpritId, stalls: StallRow[]): CulpritRuns {
  const runs = stalls
    .filter((s) => s.culprit === o.culprit && s.cpu === o.cpu && s.kind === o.kind)
    .map((s) => s.durationNs / 1e6)
    .sort((a, b) => a - b);
  return { count: runs.length, p50Ms: runs[Math.floor((runs.length - 1) / 2)] ?? 0, maxMs: runs[runs.length - 1] ?? 0 };
}

/**
 * The run most of `attributions` name, how many it explains, and the
 * distribution of its runs. Pauses are not candidates: they are the host's (or
 * interrupts held off), not a run in this kernel; nor is the tracer's own
 * process. Verdicts report both apart (pauseFinding, selfFinding), so a busy
 * hypervisor or the observer does not hide the kernel's culprit.
 */
export function leadingOverlap(attributions: (Overlap | null)[], stalls: StallRow[]): { overlap: Overlap; explained: number; runs: CulpritRuns } | null {
  const counts = new Map<string, { o: Overlap; n: number }>();
  for (const a of attributions) {
    if (!a || isApart(a.kind)) continue;
    const k = culpritKey(a);
    const c = counts.get(k) ?? { o: a, n: 0 };
    c.n++;
    counts.set(k, c);
  }
  const best = [...counts.values()].sort((a, b) => b.n - a.n)[0];
  if (!best) return null;
  return { overlap: best.o, explained: best.n, runs: culpritRuns(best.o, stalls) };
}

/** Slow packets or replies a pause explained: how many, the longest pause on their CPUs, and those CPUs. */
export interface PauseFinding {
  count: number;
  maxMs: number;
  cpus: number[];
}

/** Slow packets, replies or receive stalls the tracer's own process held up: how many, on which CPUs, its longest stretch there. */
export interface SelfFinding extends PauseFinding {
  /** "jitterscope itself (pid N)" */
  culprit: string;
}

/** What the runs of one kind said apart explained: how many, the longest such run on their CPUs, and those CPUs. */
function apartFinding(kind: 'pause' | 'self', attributions: (Overlap | null)[], stalls: StallRow[]): SelfFinding | null {
  const hit = attributions.filter((a): a is Overlap => a?.kind === kind);
  if (!hit.length) return null;
  const cpus = [...new Set(hit.map((a) => a.cpu))].sort((a, b) => a - b);
  const longest = stalls.filter((s) => s.kind === kind && cpus.includes(s.cpu)).reduce((m, s) => Math.max(m, s.durationNs), 0);
  return { culprit: hit[0].culprit, count: hit.length, maxMs: longest / 1e6, cpus };
}

export function pauseFinding(attributions: (Overlap | null)[], stalls: StallRow[]): PauseFinding | null {
  const f = apartFinding('pause', attributions, stalls);
  return f && { count: f.count, maxMs: f.maxMs, cpus: f.cpus };
}

export function selfFinding(attributions: (Overlap | null)[], stalls: StallRow[]): SelfFinding | null {
  return apartFinding('self', attributions, stalls);
}

/** One event in a stalls log: a stall row (a callback, or a softirq in which no callback ran long), with the softirq it ran in. */
export interface StallEvent extends StallRow {
  /** The softirq a callback ran in ("HRTIMER softirq"), if it was long enough to be kept too. */
  within: string | null;
}

/**
 * A callback and the softirq around it are one event: each callback run is
 * listed with the softirq run on its CPU that contains it, and that softirq
 * run is not listed again.
 */
export function stallEvents(rows: StallRow[]): StallEvent[] {
  const softirqs = rows.filter((r) => r.kind === 'softirq');
  const used = new Set<StallRow>();
  const out: StallEvent[] = [];
  for (const r of rows) {
    if (r.kind === 'softirq') continue;
    const outer = softirqs.find((s) => s.cpu === r.cpu && s.startNs <= r.startNs && s.startNs + s.durationNs >= r.startNs + r.durationNs);
    if (outer) used.add(outer);
    out.push({ ...r, within: outer?.culprit ?? null });
  }
  for (const s of softirqs) if (!used.has(s)) out.push({ ...s, within: null });
  return out.sort((a, b) => a.startNs - b.startNs);
}
