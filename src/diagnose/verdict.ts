// Verdicts: the culprit behind the slow packets, the RPS masks that steer
// traffic onto its CPU, and what to do — as data and as the text people read.
import { fmtNs, pct } from '../base/format';
import { RpsQueue, rpsQueues } from '../host/net';
import { Packet } from '../stream/aggregate';
import { adviceForCulprit, AdviceContext, cpusText, pauseAdvice } from './advice';
import { Culprit, CulpritRuns, leadingOverlap, PauseFinding, pauseFinding, SlowPacket, StallRow } from './attribute';

export interface RpsFinding {
  interface: string;
  queues: RpsQueue[];
  /** Whether some receive queue steers to the culprit's CPU (null without a culprit). */
  steersToCulpritCpu: boolean | null;
}

/** The RPS masks of `ifname` in this network namespace, held against the culprit's CPU. */
export function rpsFinding(ifname: string, culprit: { cpu: number } | null): RpsFinding {
  const queues = rpsQueues(ifname);
  return { interface: ifname, queues, steersToCulpritCpu: culprit ? queues.some((q) => q.cpus.includes(culprit.cpu)) : null };
}

function rpsLine(r: RpsFinding, cpu: number | undefined): string {
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

export interface PacketVerdict {
  /** Packets that waited at least this long are slow. */
  slowMs: number;
  slow: number;
  attributed: number;
  culprit: {
    culprit: string;
    kind: Culprit['kind'];
    cpu: number;
    packets: number;
    share: number;
    runs: CulpritRuns;
    /** The flows it delayed, most delayed first. */
    flows: Flow[];
  } | null;
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

/** A culprit is named when it explains at least this many slow packets... */
const MIN_CULPRIT_PACKETS = 3;
/** ...and at least this share of them: a stray overlap is not a verdict. */
const MIN_CULPRIT_SHARE = 0.3;

/** The verdict over a trace's slow packets; `ifname` names an ifindex in this network namespace. */
export function packetVerdict(
  slow: SlowPacket[],
  stalls: StallRow[],
  slowMs: number,
  ifname: (ifindex: number) => string | null,
  steal: { perCpuNs: number[]; durationNs: number } = { perCpuNs: [], durationNs: 0 },
  advice?: AdviceContext,
): PacketVerdict {
  const attributed = slow.filter((p) => p.attribution).length;
  const lead = leadingOverlap(slow.map((p) => p.attribution), stalls);
  let culprit: PacketVerdict['culprit'] = null;
  let hit: Packet[] = [];
  if (lead && lead.explained >= MIN_CULPRIT_PACKETS && lead.explained / slow.length >= MIN_CULPRIT_SHARE) {
    const o = lead.overlap;
    hit = slow.filter((p) => p.attribution && p.attribution.culprit === o.culprit && p.attribution.cpu === o.cpu && p.attribution.kind === o.kind);
    const flows = new Map<string, Flow>();
    for (const p of hit) {
      const f: Flow = { proto: p.proto, saddr: p.saddr, sport: p.sport, daddr: p.daddr, dport: p.dport, packets: 0 };
      const k = flowText(f);
      (flows.get(k) ?? flows.set(k, f).get(k)!).packets++;
    }
    culprit = {
      culprit: o.culprit,
      kind: o.kind,
      cpu: o.cpu,
      packets: lead.explained,
      share: lead.explained / slow.length,
      runs: lead.runs,
      flows: [...flows.values()].sort((a, b) => b.packets - a.packets).slice(0, 10),
    };
  }
  const names = [...new Set(hit.map((p) => ifname(p.ifindex)).filter((n): n is string => n !== null))].sort();
  const facts = {
    slowMs,
    slow: slow.length,
    attributed,
    culprit,
    rps: names.map((n) => rpsFinding(n, culprit)),
    hostSteal: steal.perCpuNs
      .map((ns, cpu) => ({ cpu, ns, share: steal.durationNs > 0 ? ns / steal.durationNs : 0 }))
      .filter((x) => x.ns >= STEAL_NOTE_NS || (x.ns > 0 && x.share >= STEAL_NOTE_SHARE)),
  };
  const pauses = pauseFinding(slow.map((p) => p.attribution), stalls);
  const full = { ...facts, pauses, advice: verdictAdvice(culprit && { ...culprit, count: culprit.packets }, pauses, advice) };
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
function pausesLine(p: PauseFinding, slow: number, what: string): string {
  return (
    `Host pauses: ${p.count} of ${slow} ${what} waited on ${cpusText(p.cpus)} while ${p.cpus.length === 1 ? 'it' : 'they'} took no timer interrupt (up to ${p.maxMs.toFixed(1)} ms): ` +
    'the host did not run the vCPU, or interrupts were off. Not counted against the culprit above.'
  );
}

export function packetVerdictText(v: Omit<PacketVerdict, 'text'>): string {
  const lines: string[] = [];
  const c = v.culprit;
  if (!v.slow) lines.push(`Verdict: no packet waited ${v.slowMs} ms or more: no culprit to name.`);
  else if (!c)
    lines.push(
      `Verdict: no culprit: ${v.slow} packets waited ${v.slowMs} ms or more, and no single softirq or timer callback on their CPUs explains enough of them (${v.attributed} overlapped one at all).`,
    );
  else {
    lines.push(
      `Verdict: ${c.culprit} on CPU ${c.cpu} (${c.kind}) delayed ${c.packets} of ${v.slow} slow packets (${pct(c.share)}, waited >= ${v.slowMs} ms); ` +
        `its runs: ${c.runs.count}, p50 ${c.runs.p50Ms.toFixed(1)} ms, max ${c.runs.maxMs.toFixed(1)} ms.`,
    );
    lines.push(`Flows hit: ${c.flows.slice(0, 5).map((f) => `${flowText(f)} (${f.packets})`).join(', ')}`);
  }
  if (v.pauses) lines.push(pausesLine(v.pauses, v.slow, 'slow packets'));
  for (const r of v.rps) lines.push(rpsLine(r, c?.cpu));
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
      `  ${flowText(p)}  waited ${fmtNs(p.waitNs ?? 0)}  cpu ${p.arrivalCpu}->${p.cpu}  ${p.attribution ? `${p.attribution.culprit} on CPU ${p.attribution.cpu}` : '-'}`,
    );
  return lines.join('\n');
}

export interface PingVerdict {
  sent: number;
  received: number;
  lost: number;
  slowMs: number;
  slow: number;
  slowShare: number;
  attributed: number;
  culprit: Culprit | null;
  rps: RpsFinding | null;
  /** Slow replies that waited on a CPU taking no interrupt (host pause or IRQs off). */
  pauses: PauseFinding | null;
  advice: string[];
  text: string;
}

export type PingFacts = Omit<PingVerdict, 'text'>;

/** The verdict with its text, made in one step. */
export function pingVerdict(target: string, facts: PingFacts): PingVerdict {
  return { ...facts, text: verdictText(target, facts) };
}

export function verdictText(target: string, v: PingFacts): string {
  const lines: string[] = [];
  lines.push(
    `jitterscope ping ${target}: ${v.received} of ${v.sent} replies, ${v.lost} lost; ${v.slow} slow (>= ${v.slowMs} ms, ${pct(v.slowShare)}).`,
  );
  if (!v.slow) lines.push('No slow replies: no culprit to name.');
  else if (!v.culprit)
    lines.push(
      v.pauses
        ? `No culprit in this kernel: no softirq or timer callback on the CPUs that handled them explains the ${v.slow} slow replies.`
        : `No culprit found: none of the ${v.slow} slow replies overlapped a long softirq or timer callback on the CPUs that handled them; the delay is elsewhere (sender, network, or the remote host).`,
    );
  else {
    const c = v.culprit;
    lines.push(
      `Culprit: ${c.culprit} on CPU ${c.cpu} (${c.kind}) delayed ${c.replies} of ${v.slow} slow replies (${pct(c.share)}); ` +
        `its runs: ${c.runs.count}, p50 ${c.runs.p50Ms.toFixed(1)} ms, max ${c.runs.maxMs.toFixed(1)} ms.`,
    );
    const others = v.attributed - c.replies - (v.pauses?.count ?? 0);
    if (others > 0) lines.push(`Other culprits explain ${others} more slow replies (see the report).`);
  }
  if (v.pauses) lines.push(pausesLine(v.pauses, v.slow, 'slow replies'));
  if (v.rps) lines.push(rpsLine(v.rps, v.culprit?.cpu));
  for (const a of v.advice) lines.push(`Advice: ${a}`);
  return lines.join('\n');
}
