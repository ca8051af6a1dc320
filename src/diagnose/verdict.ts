// Verdicts: the culprit behind the slow packets, the RPS masks that steer
// traffic onto its CPU, and what to do — as data and as the text people read.
import { fmtNs, pct } from '../base/format';
import { HostFacts, RpsQueue } from '../base/host-facts';
import { adviceForCulprit, AdviceContext, cpusText, pauseAdvice } from './advice';
import { Culprit, CulpritRuns, Overlap, PauseFinding, pauseFinding, ReceiveStallRow, SlowPacket, StallRow } from './attribute';

export interface RpsFinding {
  interface: string;
  queues: RpsQueue[];
  /** Whether some receive queue steers to the culprit's CPU (null without a culprit). */
  steersToCulpritCpu: boolean | null;
}

/** The RPS masks of `ifname` (from the host's facts), held against the culprit's CPU. */
export function rpsFinding(ifname: string, culprit: { cpu: number } | null, facts: HostFacts): RpsFinding {
  const queues = facts.rps[ifname] ?? [];
  return { interface: ifname, queues, steersToCulpritCpu: culprit ? queues.some((q) => q.cpus.includes(culprit.cpu)) : null };
}

export function rpsLine(r: RpsFinding, cpu: number | undefined): string {
  const masks = r.queues.map((q) => `${q.queue}=${q.cpus.length ? 'CPU ' + q.cpus.join(',') : 'off'}`).join(' ');
  const tail =
    r.steersToCulpritCpu === null || cpu === undefined
      ? ''
      : r.steersToCulpritCpu
        ? ` — steers received packets to CPU ${cpu}, the culprit's CPU.`
        : ` — does not steer to CPU ${cpu}.`;
  return `RPS on ${r.interface}: ${masks || 'no receive queues'}${tail}`;
}

// ---- the receiving node: slow packets of any protocol -----------------------

export interface Flow {
  proto: string;
  saddr: string;
  sport: number | null;
  daddr: string;
  dport: number | null;
  /** Slow packets of this flow the culprit delayed. */
  packets: number;
}

export function flowText(f: Pick<Flow, 'proto' | 'saddr' | 'sport' | 'daddr' | 'dport'>): string {
  const at = (a: string, port: number | null) => (port === null ? a : a.includes(':') ? `[${a}]:${port}` : `${a}:${port}`);
  return `${f.proto} ${at(f.saddr, f.sport)} -> ${at(f.daddr, f.dport)}`;
}

/** What a culprit explains, weighed three ways: by count, by waiting time, by the tail. */
export interface PacketCulprit {
  culprit: string;
  kind: Culprit['kind'];
  cpu: number;
  /** What the verdict stands on: the slow packets, or (few of them) the receive stalls. */
  basis: 'packets' | 'receive-stalls';
  /** Slow packets it explains, and their share of the slow packets no host pause explains. */
  packets: number;
  share: number;
  /** The waiting time of those packets (ms), and its share of those slow packets' waiting. */
  waitMs: number;
  waitShare: number;
  /** The longest waits: how many of them it explains. */
  tail: { explained: number; of: number; minMs: number };
  /** Receive stalls (late NET_RX runs) it explains, and their waits. */
  receiveStalls: { explained: number; of: number; p50Ms: number; maxMs: number };
  runs: CulpritRuns;
  /** The flows it delayed, most delayed first. */
  flows: Flow[];
  /** Source addresses of the packets that waited through its runs. */
  waiting: string[];
}

export interface PacketVerdict {
  /** Packets that waited at least this long are slow. */
  slowMs: number;
  slow: number;
  attributed: number;
  culprit: PacketCulprit | null;
  /** The receive stalls of the trace (null: none). */
  receive: { count: number; maxMs: number; deferred: number } | null;
  /** The interfaces the culprit's packets came in on, with their RPS masks. */
  rps: RpsFinding[];
  /** CPUs the hypervisor took noticeable time from during the trace (VMs only). */
  hostSteal: { cpu: number; ns: number; share: number }[];
  /** Slow packets that waited on a CPU taking no interrupt (host pause or IRQs off). */
  pauses: PauseFinding | null;
  advice: string[];
  text: string;
}

/** Steal worth saying: this much on one CPU, or this share of the trace. */
const STEAL_NOTE_NS = 50e6;
const STEAL_NOTE_SHARE = 0.01;

/** A culprit is named when it explains at least this many slow packets (or receive stalls)... */
const MIN_CULPRIT_PACKETS = 3;
/** ...and at least this share of them, or of their waiting time: a stray overlap is not a verdict... */
const MIN_CULPRIT_SHARE = 0.3;
/** ...or at least this share of the longest waits. */
const MIN_TAIL_SHARE = 0.5;
/** The tail: this share of the slow packets, the longest-waiting, and at least MIN_CULPRIT_PACKETS. */
const TAIL_SHARE = 0.25;

const keyOf = (o: Overlap) => `${o.kind}|${o.culprit}|${o.cpu}`;

interface Tally {
  o: Overlap;
  packets: SlowPacket[];
  waitNs: number;
  tail: number;
  stalls: ReceiveStallRow[];
}

/**
 * Every run that explains some slow packets or receive stalls, with what it
 * explains. Pauses are not candidates (see leadingOverlap).
 */
function tally(slow: SlowPacket[], tailSet: Set<SlowPacket>, receive: ReceiveStallRow[]): Tally[] {
  const by = new Map<string, Tally>();
  const get = (o: Overlap) => by.get(keyOf(o)) ?? by.set(keyOf(o), { o, packets: [], waitNs: 0, tail: 0, stalls: [] }).get(keyOf(o))!;
  for (const p of slow) {
    if (!p.attribution || p.attribution.kind === 'pause') continue;
    const t = get(p.attribution);
    t.packets.push(p);
    t.waitNs += p.waitNs ?? 0;
    if (tailSet.has(p)) t.tail++;
  }
  for (const r of receive) if (r.attribution && r.attribution.kind !== 'pause') get(r.attribution).stalls.push(r);
  return [...by.values()];
}

const quantileMs = (ns: number[], q: number) => {
  const v = [...ns].sort((a, b) => a - b);
  return v.length ? v[Math.min(v.length - 1, Math.floor(q * (v.length - 1)))] / 1e6 : 0;
};

/**
 * The culprit behind the slow packets, weighed by the waiting it explains as
 * well as by count: many short waits nothing explains must not hide the run
 * behind the long ones. When slow packets are few, receive stalls (NET_RX
 * runs that started late: packets waiting in a NIC's ring are first seen only
 * after the wait) stand in for them.
 */
export function chooseCulprit(all: SlowPacket[], receiveAll: ReceiveStallRow[], stalls: StallRow[]): PacketCulprit | null {
  // shares are of what the kernel made wait: a host pause explains its packets
  // apart (pauseFinding), and a busy hypervisor must not hide the kernel's culprit
  const slow = all.filter((p) => p.attribution?.kind !== 'pause');
  const receive = receiveAll.filter((r) => r.attribution?.kind !== 'pause');
  const totalWaitNs = slow.reduce((a, p) => a + (p.waitNs ?? 0), 0);
  const tailN = Math.min(slow.length, Math.max(MIN_CULPRIT_PACKETS, Math.ceil(TAIL_SHARE * slow.length)));
  const tail = [...slow].sort((a, b) => (b.waitNs ?? 0) - (a.waitNs ?? 0)).slice(0, tailN);
  const tallies = tally(slow, new Set(tail), receive);
  const byPackets = tallies
    .filter((t) => t.packets.length >= MIN_CULPRIT_PACKETS)
    .filter((t) => t.packets.length / slow.length >= MIN_CULPRIT_SHARE || (totalWaitNs > 0 && t.waitNs / totalWaitNs >= MIN_CULPRIT_SHARE) || (tailN > 0 && t.tail / tailN >= MIN_TAIL_SHARE))
    .sort((a, b) => b.waitNs - a.waitNs || b.packets.length - a.packets.length);
  const stallWait = (t: Tally) => t.stalls.reduce((a, r) => a + r.waitNs, 0);
  const byStalls = tallies
    .filter((t) => t.stalls.length >= MIN_CULPRIT_PACKETS && t.stalls.length / receive.length >= MIN_CULPRIT_SHARE)
    .sort((a, b) => stallWait(b) - stallWait(a));
  const best = byPackets[0] ?? byStalls[0];
  if (!best) return null;
  const o = best.o;
  const flows = new Map<string, Flow>();
  for (const p of best.packets) {
    const f: Flow = { proto: p.proto, saddr: p.saddr, sport: p.sport, daddr: p.daddr, dport: p.dport, packets: 0 };
    const k = flowText(f);
    (flows.get(k) ?? flows.set(k, f).get(k)!).packets++;
  }
  // the packets a late run processed first: slow packets on its CPU, processed within its run
  const waiting = new Set(best.packets.map((p) => p.saddr));
  for (const r of best.stalls)
    for (const p of slow) if (p.cpu === r.cpu && p.waitNs !== null && p.startNs + p.waitNs >= r.startNs && p.startNs + p.waitNs <= r.startNs + r.runNs) waiting.add(p.saddr);
  const runs = stalls
    .filter((s) => s.culprit === o.culprit && s.cpu === o.cpu && s.kind === o.kind)
    .map((s) => s.durationNs / 1e6)
    .sort((a, b) => a - b);
  return {
    culprit: o.culprit,
    kind: o.kind,
    cpu: o.cpu,
    basis: byPackets[0] ? 'packets' : 'receive-stalls',
    packets: best.packets.length,
    share: slow.length ? best.packets.length / slow.length : 0,
    waitMs: best.waitNs / 1e6,
    waitShare: totalWaitNs ? best.waitNs / totalWaitNs : 0,
    tail: { explained: best.tail, of: tailN, minMs: tail.length ? (tail[tail.length - 1].waitNs ?? 0) / 1e6 : 0 },
    receiveStalls: {
      explained: best.stalls.length,
      of: receive.length,
      p50Ms: quantileMs(best.stalls.map((r) => r.waitNs), 0.5),
      maxMs: quantileMs(best.stalls.map((r) => r.waitNs), 1),
    },
    runs: { count: runs.length, p50Ms: runs[Math.floor((runs.length - 1) / 2)] ?? 0, maxMs: runs[runs.length - 1] ?? 0 },
    flows: [...flows.values()].sort((a, b) => b.packets - a.packets).slice(0, 10),
    waiting: [...waiting].slice(0, 5),
  };
}

/** The verdict over a trace's slow packets and receive stalls; `facts` are the host's (interface names, RPS masks, IPVS switch). */
export function packetVerdict(
  slow: SlowPacket[],
  stalls: StallRow[],
  slowMs: number,
  facts: HostFacts,
  steal: { perCpuNs: number[]; durationNs: number } = { perCpuNs: [], durationNs: 0 },
  receive: ReceiveStallRow[] = [],
): PacketVerdict {
  const attributed = slow.filter((p) => p.attribution).length;
  const culprit = chooseCulprit(slow, receive, stalls);
  const hit = culprit ? slow.filter((p) => p.attribution && p.attribution.culprit === culprit.culprit && p.attribution.cpu === culprit.cpu && p.attribution.kind === culprit.kind) : [];
  const names = [...new Set(hit.map((p) => facts.interfaces[p.ifindex]).filter((n): n is string => n !== undefined))].sort();
  const found = {
    slowMs,
    slow: slow.length,
    attributed,
    culprit,
    receive: receive.length ? { count: receive.length, maxMs: Math.max(...receive.map((r) => r.waitNs)) / 1e6, deferred: receive.filter((r) => r.deferred).length } : null,
    rps: names.map((n) => rpsFinding(n, culprit, facts)),
    hostSteal: steal.perCpuNs
      .map((ns, cpu) => ({ cpu, ns, share: steal.durationNs > 0 ? ns / steal.durationNs : 0 }))
      .filter((x) => x.ns >= STEAL_NOTE_NS || (x.ns > 0 && x.share >= STEAL_NOTE_SHARE)),
  };
  const pauses = pauseFinding(slow.map((p) => p.attribution), stalls);
  const count = culprit ? Math.max(culprit.packets, culprit.receiveStalls.explained) : 0;
  const full = { ...found, pauses, advice: verdictAdvice(culprit && { ...culprit, count }, pauses, { ipvsSwitch: facts.ipvsSwitch }) };
  return { ...full, text: packetVerdictText(full) };
}

/**
 * The culprit's advice, then the pauses' when they explain at least as many
 * slow packets or replies (or nothing else does).
 */
export function verdictAdvice(
  culprit: { culprit: string; cpu: number; count: number; runs: CulpritRuns } | null,
  pauses: PauseFinding | null,
  ctx?: AdviceContext,
): string[] {
  const out = culprit ? adviceForCulprit(culprit.culprit, culprit.cpu, culprit.runs.maxMs, ctx) : [];
  if (pauses && pauses.count >= (culprit?.count ?? 0)) out.push(...pauseAdvice(pauses.cpus, pauses.maxMs));
  return out;
}

/** The verdict line about pauses: `what` is "slow packets" or "slow replies". */
export function pausesLine(p: PauseFinding, slow: number, what: string): string {
  return (
    `Host pauses: ${p.count} of ${slow} ${what} waited on ${cpusText(p.cpus)} while ${p.cpus.length === 1 ? 'it' : 'they'} took no timer interrupt (up to ${p.maxMs.toFixed(1)} ms): ` +
    'the host did not run the vCPU, or interrupts were off. Not counted against the culprit above.'
  );
}

export function packetVerdictText(v: Omit<PacketVerdict, 'text'>): string {
  const lines: string[] = [];
  const c = v.culprit;
  const r = v.receive;
  if (!v.slow && !r) lines.push(`Verdict: no packet waited ${v.slowMs} ms or more: no culprit to name.`);
  else if (!c)
    lines.push(
      `Verdict: no culprit: ${v.slow} packets waited ${v.slowMs} ms or more${r ? ` and ${r.count} NET_RX runs started that late` : ''}, and no single softirq, timer callback or task on their CPUs explains enough of them (${v.attributed} packets overlapped one at all).`,
    );
  else if (c.basis === 'packets') {
    const paused = v.pauses?.count ?? 0;
    const of = paused ? ` of the ${v.slow - paused} no host pause explains` : '';
    lines.push(
      `Verdict: ${c.culprit} on CPU ${c.cpu} (${c.kind}) delayed ${c.packets} of ${v.slow} slow packets (${pct(c.share)}${of}, waited >= ${v.slowMs} ms) ` +
        `and ${c.waitMs.toFixed(1)} ms of their waiting (${pct(c.waitShare)}), ${c.tail.explained} of the ${c.tail.of} longest waits (>= ${c.tail.minMs.toFixed(1)} ms); ` +
        `its runs: ${c.runs.count}, p50 ${c.runs.p50Ms.toFixed(1)} ms, max ${c.runs.maxMs.toFixed(1)} ms.`,
    );
    lines.push(`Flows hit: ${c.flows.slice(0, 5).map((f) => `${flowText(f)} (${f.packets})`).join(', ')}`);
  } else {
    const rs = c.receiveStalls;
    lines.push(
      `Verdict: ${c.culprit} on CPU ${c.cpu} (${c.kind}) held receive processing ${rs.explained} times (${rs.explained} of ${rs.of} late NET_RX runs; ` +
        `waits p50 ${rs.p50Ms.toFixed(1)} ms, max ${rs.maxMs.toFixed(1)} ms)${c.waiting.length ? `; packets from ${c.waiting.join(', ')} were waiting` : ''}. ` +
        `Its runs: ${c.runs.count}, p50 ${c.runs.p50Ms.toFixed(1)} ms, max ${c.runs.maxMs.toFixed(1)} ms.`,
    );
    if (c.flows.length) lines.push(`Flows hit: ${c.flows.slice(0, 5).map((f) => `${flowText(f)} (${f.packets})`).join(', ')}`);
  }
  if (r)
    lines.push(
      `Receive stalls: ${r.count} NET_RX runs started >= ${v.slowMs} ms after they were raised (longest wait ${r.maxMs.toFixed(1)} ms${r.deferred ? `; ${r.deferred} of them in ksoftirqd` : ''})` +
        `${c ? `; ${c.receiveStalls.explained} explained by ${c.culprit}` : ''}. Packets waiting in a NIC's ring are first seen after such a wait.`,
    );
  if (v.pauses) lines.push(pausesLine(v.pauses, v.slow, 'slow packets'));
  for (const q of v.rps) lines.push(rpsLine(q, c?.cpu));
  if (v.hostSteal.length)
    lines.push(
      `Host steal: the hypervisor took ${v.hostSteal.map((x) => `${fmtNs(x.ns)} from CPU ${x.cpu} (${pct(x.share)})`).join(', ')} of this trace; ` +
        'inside a VM that looks like a long callback or a wait with nothing running; check steal in /proc/stat, CPU overcommit on the host, or a dedicated instance.',
    );
  for (const a of v.advice) lines.push(`Advice: ${a}`);
  return lines.join('\n');
}

export function slowPacketsText(slow: SlowPacket[], limit = 10): string {
  const rows = [...slow].sort((a, b) => (b.waitNs ?? 0) - (a.waitNs ?? 0)).slice(0, limit);
  if (!rows.length) return '';
  const lines = [`slowest packets (of ${slow.length}):`];
  for (const p of rows)
    lines.push(
      // a later packet of a NAPI poll waited at most that long (see Packet.path)
      `  ${flowText(p)}  waited ${p.path === 'napi-bound' || p.path === 'late-run' ? '<= ' : ''}${fmtNs(p.waitNs ?? 0)}  cpu ${p.arrivalCpu}->${p.cpu}${p.path === 'napi' || p.path === 'napi-bound' ? ' (NIC ring)' : p.path === 'late-run' ? ' (late NET_RX run)' : ''}  ${p.attribution ? `${p.attribution.culprit} on CPU ${p.attribution.cpu}` : '-'}`,
    );
  return lines.join('\n');
}
