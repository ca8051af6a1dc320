// Choosing the culprit behind slow packets and receive stalls: each candidate
// weighed by count, by the waiting time it explains and by the longest waits.
// Pure logic, used by the packet verdict.
import { CulpritId, culpritKey, CulpritRuns, culpritRuns, isApart, Overlap, ReceiveStallRow, SlowPacket, StallRow } from './attribute';
import { serviceFlowText, wakeupCostNs, WakeupRow } from './wakeup';

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
export interface PacketCulprit extends CulpritId {
  /** What the verdict stands on: the slow packets, or (few of them) the receive stalls, or (neither) the slow wake-ups. */
  basis: 'packets' | 'receive-stalls' | 'wakeups';
  /** Slow packets it explains, and their share of the slow packets no host pause explains. */
  packets: number;
  share: number;
  /** The waiting time of those packets (ms), and its share of those slow packets' waiting. */
  waitMs: number;
  waitShare: number;
  /** The spikes, the longest waits (see SPIKE_FACTOR): how many of them it explains, of how many, the shortest of them. */
  tail: { explained: number; of: number; minMs: number };
  /** The slow packets it does not explain (no host pause or the tracer itself either): how many, and their waits. */
  rest: { packets: number; minMs: number; maxMs: number };
  /** Receive stalls (late NET_RX runs) it explains, and their waits. */
  receiveStalls: { explained: number; of: number; p50Ms: number; maxMs: number };
  /** Slow wake-ups and stolen runs of network-woken tasks it explains, of all, their waits (or time lost), and the tasks. */
  wakeups: {
    explained: number;
    of: number;
    stolen: number;
    ready?: number;
    p50Ms: number;
    maxMs: number;
    tasks: string[];
    flows: { flow: string; count: number }[];
  };
  runs: CulpritRuns;
  /** The flows it delayed, most delayed first. */
  flows: Flow[];
  /** Source addresses of the packets that waited through its runs. */
  waiting: string[];
}

/** A culprit is named when it explains at least this many slow packets (or receive stalls)... */
const MIN_CULPRIT_PACKETS = 3;
/** ...and at least this share of them, or of their waiting time: a stray overlap is not a verdict... */
const MIN_CULPRIT_SHARE = 0.3;
/** ...or at least this share of the spikes. */
const MIN_TAIL_SHARE = 0.5;
/**
 * The spikes a user reports: exactly timed waits of at least this many times
 * the slow threshold, the longest SPIKES_MAX of them. Neither bound grows with the
 * short waits a busy or emulated node makes by the hundred, so those cannot
 * outvote the run behind the spikes.
 */
export const SPIKE_FACTOR = 4;
export const SPIKES_MAX = 20;

interface Tally {
  o: Overlap;
  packets: SlowPacket[];
  waitNs: number;
  tail: number;
  stalls: ReceiveStallRow[];
  wakeups: WakeupRow[];
}

/**
 * Every run that explains some slow packets or receive stalls, with what it
 * explains. Pauses are not candidates (see leadingOverlap).
 */
function tally(slow: SlowPacket[], tailSet: Set<SlowPacket>, receive: ReceiveStallRow[], wakeups: WakeupRow[]): Tally[] {
  const by = new Map<string, Tally>();
  const get = (o: Overlap) =>
    by.get(culpritKey(o)) ?? by.set(culpritKey(o), { o, packets: [], waitNs: 0, tail: 0, stalls: [], wakeups: [] }).get(culpritKey(o))!;
  for (const p of slow) {
    if (!p.attribution || isApart(p.attribution.kind)) continue;
    const t = get(p.attribution);
    t.packets.push(p);
    t.waitNs += p.waitNs ?? 0;
    if (tailSet.has(p)) t.tail++;
  }
  for (const r of receive) if (r.attribution && !isApart(r.attribution.kind)) get(r.attribution).stalls.push(r);
  for (const x of wakeups) if (x.attribution && !isApart(x.attribution.kind)) get(x.attribution).wakeups.push(x);
  return [...by.values()];
}

/** The sockets of these wake-ups, by service (the peer's port left out), most often first. */
function countFlows(wakeups: WakeupRow[]): { flow: string; count: number }[] {
  const n = new Map<string, number>();
  for (const x of wakeups) if (x.flow) n.set(serviceFlowText(x.flow), (n.get(serviceFlowText(x.flow)) ?? 0) + 1);
  return [...n]
    .map(([flow, count]) => ({ flow, count }))
    .sort((a, b) => b.count - a.count)
    .slice(0, 5);
}

/** The slow packets outside `hit`: how many, and their shortest and longest waits. */
function restOf(slow: SlowPacket[], hit: Set<SlowPacket>): PacketCulprit['rest'] {
  const waits = slow.filter((p) => !hit.has(p) && p.waitNs !== null).map((p) => p.waitNs! / 1e6);
  return { packets: slow.length - hit.size, minMs: waits.length ? Math.min(...waits) : 0, maxMs: waits.length ? Math.max(...waits) : 0 };
}

const quantileMs = (ns: number[], q: number) => {
  const v = [...ns].sort((a, b) => a - b);
  return v.length ? v[Math.min(v.length - 1, Math.floor(q * (v.length - 1)))] / 1e6 : 0;
};

/**
 * The culprit behind the slow packets. First the spikes: a run that explains
 * most of them, and more than any other, is the culprit however many short
 * waits nothing explains. Failing that, the waiting it explains as well as the
 * count: many short waits nothing explains must not hide the run behind the
 * long ones. When slow packets are few, receive stalls (NET_RX runs that
 * started late: packets waiting in a NIC's ring are first seen only after the
 * wait) stand in for them. Host pauses and the tracer's own process are said
 * apart (pauseFinding, selfFinding) and leave every share's denominator.
 */
export function chooseCulprit(
  all: SlowPacket[],
  receiveAll: ReceiveStallRow[],
  stalls: StallRow[],
  slowNs: number,
  wakeupsAll: WakeupRow[] = [],
): PacketCulprit | null {
  const slow = all.filter((p) => !p.attribution || !isApart(p.attribution.kind));
  const receive = receiveAll.filter((r) => !r.attribution || !isApart(r.attribution.kind));
  const wakeups = wakeupsAll.filter((x) => !x.attribution || !isApart(x.attribution.kind));
  const totalWaitNs = slow.reduce((a, p) => a + (p.waitNs ?? 0), 0);
  // exact waits only: a poll's later packets ('napi-bound') and serve's late-run packets are timed
  // from the poll's raise, upper bounds that one burst (a host that paused, then sent a dozen at once) repeats
  const tail = slow
    .filter((p) => p.waitNs !== null && p.waitNs >= SPIKE_FACTOR * slowNs && p.path !== 'napi-bound' && p.path !== 'late-run')
    .sort((a, b) => (b.waitNs ?? 0) - (a.waitNs ?? 0))
    .slice(0, SPIKES_MAX);
  const tailN = tail.length;
  const tallies = tally(slow, new Set(tail), receive, wakeups);
  const bySpikes = [...tallies].sort((a, b) => b.tail - a.tail);
  // most of the spikes (so more than any other run), and never fewer than a stray overlap could make
  const spikeLeader = bySpikes[0] && bySpikes[0].tail >= MIN_CULPRIT_PACKETS && bySpikes[0].tail > tailN / 2 ? bySpikes[0] : undefined;
  const byPackets = tallies
    .filter((t) => t.packets.length >= MIN_CULPRIT_PACKETS)
    .filter(
      (t) =>
        t.packets.length / slow.length >= MIN_CULPRIT_SHARE ||
        (totalWaitNs > 0 && t.waitNs / totalWaitNs >= MIN_CULPRIT_SHARE) ||
        (tailN > 0 && t.tail / tailN >= MIN_TAIL_SHARE),
    )
    .sort((a, b) => b.waitNs - a.waitNs || b.packets.length - a.packets.length);
  const stallWait = (t: Tally) => t.stalls.reduce((a, r) => a + r.waitNs, 0);
  const byStalls = tallies
    .filter((t) => t.stalls.length >= MIN_CULPRIT_PACKETS && t.stalls.length / receive.length >= MIN_CULPRIT_SHARE)
    .sort((a, b) => stallWait(b) - stallWait(a));
  // the application's share, when no packet or receive stall names a culprit: tasks that waited for a CPU a run held
  const wakeupCost = (t: Tally) => t.wakeups.reduce((a, x) => a + wakeupCostNs(x), 0);
  const byWakeups = tallies
    .filter((t) => t.wakeups.length >= MIN_CULPRIT_PACKETS && t.wakeups.length / wakeups.length >= MIN_CULPRIT_SHARE)
    .sort((a, b) => wakeupCost(b) - wakeupCost(a));
  const best = spikeLeader ?? byPackets[0] ?? byStalls[0] ?? byWakeups[0];
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
    for (const p of slow)
      if (p.cpu === r.cpu && p.waitNs !== null && p.startNs + p.waitNs >= r.startNs && p.startNs + p.waitNs <= r.startNs + r.runNs) waiting.add(p.saddr);
  return {
    culprit: o.culprit,
    kind: o.kind,
    cpu: o.cpu,
    basis: best === spikeLeader || byPackets.includes(best) ? 'packets' : byStalls.includes(best) ? 'receive-stalls' : 'wakeups',
    packets: best.packets.length,
    share: slow.length ? best.packets.length / slow.length : 0,
    waitMs: best.waitNs / 1e6,
    waitShare: totalWaitNs ? best.waitNs / totalWaitNs : 0,
    tail: { explained: best.tail, of: tailN, minMs: tail.length ? (tail[tail.length - 1].waitNs ?? 0) / 1e6 : 0 },
    rest: restOf(slow, new Set(best.packets)),
    receiveStalls: {
      explained: best.stalls.length,
      of: receive.length,
      p50Ms: quantileMs(
        best.stalls.map((r) => r.waitNs),
        0.5,
      ),
      maxMs: quantileMs(
        best.stalls.map((r) => r.waitNs),
        1,
      ),
    },
    wakeups: {
      explained: best.wakeups.length,
      of: wakeups.length,
      stolen: best.wakeups.filter((x) => x.kind === 'stolen').length,
      ready: best.wakeups.filter((x) => x.kind === 'ready').length,
      p50Ms: quantileMs(best.wakeups.map(wakeupCostNs), 0.5),
      maxMs: quantileMs(best.wakeups.map(wakeupCostNs), 1),
      tasks: [...new Set(best.wakeups.map((x) => x.task))].slice(0, 5),
      flows: countFlows(best.wakeups),
    },
    runs: culpritRuns(o, stalls),
    flows: [...flows.values()].sort((a, b) => b.packets - a.packets).slice(0, 10),
    waiting: [...waiting].slice(0, 5),
  };
}
