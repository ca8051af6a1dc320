// Verdicts: the culprit behind the slow packets, the RPS masks that steer
// traffic onto its CPU, and what to do — as data and as the text people read.
import { fmtNs, pct } from '../base/format';
import { HostFacts, RpsQueue } from '../base/host-facts';
import { adviceForCulprit, AdviceContext, cpusText, pauseAdvice } from './advice';
import { CulpritId, CulpritRuns, PauseFinding, pauseFinding, ReceiveStallRow, SelfFinding, selfFinding, SlowPacket, StallRow } from './attribute';
import { chooseCulprit, Flow, flowText, PacketCulprit, SPIKE_FACTOR } from './culprit';
import { wakeupCostNs, WakeupRow } from './wakeup';

export { chooseCulprit, flowText };
export type { Flow, PacketCulprit };

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

export interface PacketVerdict {
  /** Packets that waited at least this long are slow. */
  slowMs: number;
  slow: number;
  attributed: number;
  culprit: PacketCulprit | null;
  /** The receive stalls of the trace (null: none). */
  receive: { count: number; maxMs: number; deferred: number; napiThread: number } | null;
  /** Tasks woken by receive processing that waited at least wakeupMs to run (slow wake-ups) or lost that much of their run to softirqs (stolen runs), null: none. */
  wakeups: { wakeupMs: number; count: number; stolen: number; ready?: number; maxMs: number; tasks: string[] } | null;
  /** The interfaces the culprit's packets came in on, with their RPS masks. */
  rps: RpsFinding[];
  /** CPUs the hypervisor took noticeable time from during the trace (VMs only). */
  hostSteal: { cpu: number; ns: number; share: number }[];
  /** Slow packets that waited on a CPU taking no interrupt (host pause or IRQs off). */
  pauses: PauseFinding | null;
  /** Slow packets and receive stalls that waited while jitterscope's own process held their CPU. */
  self: SelfFinding | null;
  advice: string[];
  text: string;
}

/** Steal worth saying: this much on one CPU, or this share of the trace. */
const STEAL_NOTE_NS = 50e6;
const STEAL_NOTE_SHARE = 0.01;

/** The verdict over a trace's slow packets and receive stalls; `facts` are the host's (interface names, RPS masks, IPVS switch). */
export function packetVerdict(
  slow: SlowPacket[],
  stalls: StallRow[],
  slowMs: number,
  facts: HostFacts,
  steal: { perCpuNs: readonly number[]; durationNs: number } = { perCpuNs: [], durationNs: 0 },
  receive: ReceiveStallRow[] = [],
  wakeups: WakeupRow[] = [],
  wakeupMs = slowMs,
): PacketVerdict {
  const attributed = slow.filter((p) => p.attribution).length;
  const culprit = chooseCulprit(slow, receive, stalls, slowMs * 1e6, wakeups);
  const hit = culprit
    ? slow.filter((p) => p.attribution && p.attribution.culprit === culprit.culprit && p.attribution.cpu === culprit.cpu && p.attribution.kind === culprit.kind)
    : [];
  const names = [...new Set(hit.map((p) => facts.interfaces[p.ifindex]).filter((n): n is string => n !== undefined))].sort();
  const found = {
    slowMs,
    slow: slow.length,
    attributed,
    culprit,
    receive: receive.length
      ? {
          count: receive.length,
          maxMs: Math.max(...receive.map((r) => r.waitNs)) / 1e6,
          deferred: receive.filter((r) => r.deferred).length,
          napiThread: receive.filter((r) => r.napiThread !== null).length,
        }
      : null,
    wakeups: wakeups.length
      ? {
          wakeupMs,
          count: wakeups.length,
          stolen: wakeups.filter((x) => x.kind === 'stolen').length,
          ready: wakeups.filter((x) => x.kind === 'ready').length,
          maxMs: Math.max(...wakeups.map(wakeupCostNs)) / 1e6,
          tasks: [...new Set(wakeups.map((x) => x.task))].slice(0, 5),
        }
      : null,
    rps: names.map((n) => rpsFinding(n, culprit, facts)),
    hostSteal: steal.perCpuNs
      .map((ns, cpu) => ({ cpu, ns, share: steal.durationNs > 0 ? ns / steal.durationNs : 0 }))
      .filter((x) => x.ns >= STEAL_NOTE_NS || (x.ns > 0 && x.share >= STEAL_NOTE_SHARE)),
  };
  const pauses = pauseFinding(
    [...slow, ...wakeups].map((p) => p.attribution),
    stalls,
  );
  const self = selfFinding(
    [...slow, ...receive, ...wakeups].map((p) => p.attribution),
    stalls,
  );
  const count = culprit ? Math.max(culprit.packets, culprit.receiveStalls.explained, culprit.wakeups.explained) : 0;
  const full = {
    ...found,
    pauses,
    self,
    advice: verdictAdvice(culprit && { ...culprit, count }, pauses, {
      ipvsSwitch: facts.ipvsSwitch,
      heldUp: culprit?.basis === 'wakeups' ? 'wakeups' : 'packets',
    }),
  };
  return { ...full, text: packetVerdictText(full) };
}

/**
 * The culprit's advice, then the pauses' when they explain at least as many
 * slow packets or replies (or nothing else does).
 */
export function verdictAdvice(culprit: (CulpritId & { count: number; runs: CulpritRuns }) | null, pauses: PauseFinding | null, ctx?: AdviceContext): string[] {
  const out = culprit ? adviceForCulprit(culprit, culprit.runs.maxMs, ctx) : [];
  if (pauses && pauses.count >= (culprit?.count ?? 0)) out.push(...pauseAdvice(pauses.cpus, pauses.maxMs));
  return out;
}

/** The verdict line about the tracer's own process: `what` is "slow packets or late NET_RX runs" or "slow replies". */
export function selfLine(f: SelfFinding, what: string): string {
  return (
    `The observer: ${f.culprit} held ${cpusText(f.cpus)} while ${f.count} ${what} waited (its longest stretch there ${f.maxMs.toFixed(1)} ms). ` +
    'It runs at a low priority (nice 19; serve 10) so receive processing comes first; on a CPU with nothing else to run it still takes its turn. Not counted against any culprit.'
  );
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
  const w = v.wakeups;
  if (!v.slow && !r && !w)
    lines.push(
      `Verdict: no packet waited ${v.slowMs} ms or more, and no task woken by receive processing waited or lost its CPU that long: no culprit to name.`,
    );
  else if (!c)
    lines.push(
      `Verdict: no culprit: ${v.slow} packets waited ${v.slowMs} ms or more${r ? ` and ${r.count} NET_RX runs started that late` : ''}${w ? `; ${w.count} times a task woken by receive processing waited or lost its CPU ${w.wakeupMs} ms or more` : ''}, and no single softirq, timer callback or task on their CPUs explains enough of them (${v.attributed} packets overlapped one at all).`,
    );
  else if (c.basis === 'wakeups') {
    const x = c.wakeups;
    lines.push(
      `Verdict: ${c.culprit} on CPU ${c.cpu} (${c.kind}) held ${x.tasks.join(', ')} ${x.explained} times after receive processing woke them ` +
        `(${x.explained} of ${x.of} slow wake-ups${x.stolen ? `, ${x.stolen} of them runs it took time from` : ''}${x.ready ? `, ${x.ready} of them already awake when their data arrived` : ''}; p50 ${x.p50Ms.toFixed(1)} ms, max ${x.maxMs.toFixed(1)} ms); ` +
        `${v.slow ? `no culprit stands out among the ${v.slow} slow packets` : 'their packets were not slow'}. Its runs: ${c.runs.count}, p50 ${c.runs.p50Ms.toFixed(1)} ms, max ${c.runs.maxMs.toFixed(1)} ms.`,
    );
    if (x.flows?.length) lines.push(`Their sockets: ${x.flows.map((f) => `${f.flow} (${f.count})`).join(', ')}`);
  } else if (c.basis === 'packets') {
    // shares are of the slow packets no host pause or the tracer itself explains
    const considered = c.share ? Math.round(c.packets / c.share) : v.slow;
    const of = considered < v.slow ? ` of the ${considered} no host pause${v.self ? ' or jitterscope itself' : ''} explains` : '';
    const spikes = c.tail.of
      ? `${c.tail.explained} of the ${c.tail.of} longest waits (>= ${c.tail.minMs.toFixed(1)} ms)`
      : `no wait reached ${SPIKE_FACTOR * v.slowMs} ms`;
    lines.push(
      `Verdict: ${c.culprit} on CPU ${c.cpu} (${c.kind}) delayed ${c.packets} of ${v.slow} slow packets (${pct(c.share)}${of}, waited >= ${v.slowMs} ms) ` +
        `and ${c.waitMs.toFixed(1)} ms of their waiting (${pct(c.waitShare)}), ${spikes}; ` +
        `its runs: ${c.runs.count}, p50 ${c.runs.p50Ms.toFixed(1)} ms, max ${c.runs.maxMs.toFixed(1)} ms.`,
    );
    if (c.rest.packets)
      lines.push(
        `The other ${c.rest.packets} slow packets waited ${c.rest.minMs.toFixed(1)}-${c.rest.maxMs.toFixed(1)} ms${c.tail.of && c.rest.maxMs < c.tail.minMs ? ', shorter than the spikes' : ''}, with no single cause named here.`,
      );
    lines.push(
      `Flows hit: ${c.flows
        .slice(0, 5)
        .map((f) => `${flowText(f)} (${f.packets})`)
        .join(', ')}`,
    );
  } else {
    const rs = c.receiveStalls;
    lines.push(
      `Verdict: ${c.culprit} on CPU ${c.cpu} (${c.kind}) held receive processing ${rs.explained} times (${rs.explained} of ${rs.of} late NET_RX runs; ` +
        `waits p50 ${rs.p50Ms.toFixed(1)} ms, max ${rs.maxMs.toFixed(1)} ms)${c.waiting.length ? `; packets from ${c.waiting.join(', ')} were waiting` : ''}. ` +
        `Its runs: ${c.runs.count}, p50 ${c.runs.p50Ms.toFixed(1)} ms, max ${c.runs.maxMs.toFixed(1)} ms.`,
    );
    if (c.flows.length)
      lines.push(
        `Flows hit: ${c.flows
          .slice(0, 5)
          .map((f) => `${flowText(f)} (${f.packets})`)
          .join(', ')}`,
      );
  }
  if (r)
    lines.push(
      `Receive stalls: ${r.count} NET_RX runs started >= ${v.slowMs} ms after they were raised (longest wait ${r.maxMs.toFixed(1)} ms${r.deferred ? `; ${r.deferred} of them in ksoftirqd` : ''}${r.napiThread ? `; ${r.napiThread} of them NAPI thread runs, timed from the thread's wakeup` : ''})` +
        `${c ? `; ${c.receiveStalls.explained} explained by ${c.culprit}` : ''}. Packets waiting in a NIC's ring are first seen after such a wait.`,
    );
  if (w && c?.basis !== 'wakeups')
    lines.push(
      `Slow wake-ups: ${w.count} times a task woken by receive processing (${w.tasks.join(', ')}) waited >= ${w.wakeupMs} ms to run or lost that much of its run${w.ready ? ` (${w.ready} of them already awake, their data waiting for them)` : ''} (longest ${w.maxMs.toFixed(1)} ms)` +
        `${c ? `; ${c.wakeups.explained} explained by ${c.culprit}` : ''}.`,
    );
  if (v.pauses) lines.push(pausesLine(v.pauses, v.slow, 'slow packets'));
  if (v.self) lines.push(selfLine(v.self, 'slow packets, late NET_RX runs or woken tasks'));
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
