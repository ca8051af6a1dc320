// The mesh: each node probes a few peers (k of N, chosen by rendezvous
// hashing of node names, so the set stays stable as nodes come and go), with
// ICMP echo and UDP to the peer's responder, and each slow probe is joined
// with what the peer's own trace says held it (asked by packet identity: this
// node's address, and the echo id and sequence or the UDP source port;
// diagnose/explain.ts) and with this node's trace of the reply. Never by
// comparing clocks. Pure logic: the choice of peers, a slow probe's side and
// culprit, and the /mesh view's shape.
import { createHash } from 'node:crypto';
import { Overlap, packetWindow, pausedNs, SlowPacket, StallRow, WaitWindow } from './attribute';
import type { PeerAnswer, ProbeAnswer } from './explain';
import { wakeupWindow, WakeupRow } from './wakeup';

export const MESH_SCHEMA_ID = 'jitterscope.mesh/v1';

export interface PeerCandidate {
  /** Its node name where known, else its address. */
  name: string;
  address: string;
}

const score = (self: string, peer: string) => createHash('sha256').update(`${self}\0${peer}`).digest().readBigUInt64BE(0);

/**
 * The k candidates `self` probes: those with the highest rendezvous score (a
 * hash of both names). A node that joins or leaves changes at most one of
 * another's peers, and every node is probed by about k others, whatever N.
 * `self` (by name or address) is never its own peer.
 */
export function choosePeers(self: string, selfAddresses: Set<string>, candidates: PeerCandidate[], k: number): PeerCandidate[] {
  const seen = new Set<string>();
  const others = candidates.filter((c) => c.name !== self && !selfAddresses.has(c.address) && !seen.has(c.address) && seen.add(c.address));
  return others
    .map((c) => ({ c, s: score(self, c.name) }))
    .sort((a, b) => (a.s < b.s ? 1 : a.s > b.s ? -1 : a.c.name.localeCompare(b.c.name)))
    .slice(0, k)
    .map((x) => x.c);
}

/**
 * Where a slow probe was held: at the peer (its trace held the request), here
 * (this node's trace held the reply), between (both answered and neither held
 * it: the network, or the hosts under the two kernels), or unknown (the peer
 * did not answer).
 */
export type MeshSide = 'peer' | 'here' | 'between' | 'unknown';
export const MESH_SIDES: MeshSide[] = ['peer', 'here', 'between', 'unknown'];

export type MeshProto = 'icmp' | 'udp';

export interface ProbeOutcome {
  proto: MeshProto;
  /** icmp: the echo sequence number (16 bits); udp: the probe's source port. */
  seq: number;
  /** null: lost (no reply within 2 s); the peer's answer then says whether its trace saw it held. */
  rttMs: number | null;
  side: MeshSide;
  /** What held it, on that side ("unexplained" when it waited there and nothing held the CPU; null for between and unknown). */
  culprit: string | null;
  kind: string | null;
  /** The CPU the culprit held. */
  cpu: number | null;
  /** How long it waited on that side (ms; an upper bound where the trace only bounds it). */
  waitMs: number | null;
  /** How much of that wait a host pause on that side covered, as its trace saw the pause (ms; null when no side held it). */
  pausedMs: number | null;
  /** What the peer's trace said of it (null: the peer did not answer); for a lost UDP probe, seen or not-seen says which way it was lost. */
  peerSaw: ProbeAnswer['state'] | null;
}

/**
 * One slow probe's side: the peer's answer about it (null: the peer did not
 * answer) and what held its reply here (heldHere()), if anything. A side holds
 * a probe only when its wait explains at least half of what the probe took
 * over the usual round trip (`usualMs`, the recent median): a 1 ms late run
 * does not explain a 12 ms probe. Waits at both ends explain it together
 * (3.5 ms there and 3.4 ms here of an 8 ms probe). Where both hold it, the
 * longer wait is the side.
 */
export function joinProbe(
  proto: MeshProto,
  seq: number,
  rttMs: number | null,
  peer: ProbeAnswer | null,
  here: Held | undefined,
  usualMs = 0,
  herePausedMs = 0,
): ProbeOutcome {
  const enough = rttMs === null ? 0 : 0.5 * Math.max(0, rttMs - usualMs);
  // a probe that waited at both ends (a late wake-up there, another here) is held where it waited longer
  const peerHeld = peer?.state === 'slow' ? (peer.waitMs ?? 0) : 0;
  const hereHeld = here ? (here.waitNs ?? 0) / 1e6 : 0;
  const both = peer?.state === 'slow' && here !== undefined && peerHeld + hereHeld >= enough;
  const peerWait = peer?.state === 'slow' && (peerHeld >= enough || both) ? peerHeld : -1;
  const hereWait = here && (hereHeld >= enough || both) ? hereHeld : -1;
  const peerSaw = peer?.state ?? null;
  if (peerWait >= 0 && peerWait >= hereWait) {
    const p = peer!;
    return {
      proto,
      seq,
      rttMs,
      side: 'peer',
      culprit: p.culprit ?? 'unexplained',
      kind: p.kind,
      cpu: p.culpritCpu,
      waitMs: p.waitMs,
      pausedMs: p.pausedMs ?? 0,
      peerSaw,
    };
  }
  if (hereWait >= 0) {
    const a = here!.attribution;
    return {
      proto,
      seq,
      rttMs,
      side: 'here',
      culprit: a?.culprit ?? 'unexplained',
      kind: a?.kind ?? null,
      cpu: a?.cpu ?? null,
      waitMs: hereWait,
      pausedMs: herePausedMs,
      peerSaw,
    };
  }
  return { proto, seq, rttMs, side: peer ? 'between' : 'unknown', culprit: null, kind: null, cpu: null, waitMs: null, pausedMs: null, peerSaw };
}

/**
 * This node's slow packets that are replies from `address` to this prober's
 * probes, by the probe's identity: echo replies to echo id `key` by sequence
 * number (icmp), or datagrams from the responder's port `key` by the port
 * they came to (udp).
 */
export function repliesHeldHere(packets: SlowPacket[], address: string, proto: MeshProto, key: number): Map<number, SlowPacket> {
  const out = new Map<number, SlowPacket>();
  for (const p of packets) {
    if (p.saddr !== address) continue;
    const seq =
      proto === 'udp'
        ? p.proto === 'udp' && p.sport === key
          ? p.dport
          : null
        : (p.proto === 'icmp' || p.proto === 'icmpv6') && (p.type === 0 || p.type === 129) && p.id === key
          ? p.seq
          : null;
    if (seq === null) continue;
    const had = out.get(seq);
    if (!had || (p.waitNs ?? 0) > (had.waitNs ?? 0)) out.set(seq, p);
  }
  return out;
}

/** A wait on one side and what explains it: a slow packet, or what heldHere() makes of a probe's reply. */
export interface Held {
  /** ns; null: not timed exactly (a packet whose arrival was not seen). */
  waitNs: number | null;
  attribution: Overlap | null;
}

/**
 * This node's UDP prober's own slow wake-ups, by the probe they were for: the
 * reply woke the prober on the probe's socket, whose own port is the probe's
 * source port (its identity). The longest wait of each.
 */
export function proberWakeups(own: WakeupRow[]): Map<number, WakeupRow> {
  const out = new Map<number, WakeupRow>();
  for (const x of own) {
    if (x.kind === 'stolen' || x.flow?.proto !== 'udp') continue;
    const had = out.get(x.flow.dport);
    if (!had || x.durationNs > had.durationNs) out.set(x.flow.dport, x);
  }
  return out;
}

/**
 * What held a probe's reply here: its slow packet (the wait to be processed)
 * and, for UDP, the prober's slow wake-up after it (the wait to run). They
 * follow one another, so their waits add; the longer names the culprit. And
 * how much of them host pauses covered (ms).
 */
export function heldHere(reply: SlowPacket | undefined, wake: WakeupRow | undefined, stalls: StallRow[]): { held: Held; pausedMs: number } | undefined {
  const parts: { waitNs: number; attribution: Overlap | null; window: WaitWindow }[] = [];
  if (reply && reply.waitNs !== null) parts.push({ waitNs: reply.waitNs, attribution: reply.attribution, window: packetWindow(reply) });
  if (wake)
    parts.push({
      waitNs: wake.durationNs,
      attribution: wake.attribution,
      window: wakeupWindow(wake),
    });
  if (!parts.length) return reply && { held: reply, pausedMs: 0 };
  const longest = parts.reduce((a, b) => (b.waitNs > a.waitNs ? b : a));
  return {
    held: { waitNs: parts.reduce((t, x) => t + x.waitNs, 0), attribution: longest.attribution },
    pausedMs: parts.reduce((t, x) => t + pausedNs(x.window, stalls), 0) / 1e6,
  };
}

/** A peer's state in the mesh: probing and its serve answering, or what is wrong with asking it. */
export type PeerState = 'probing' | PeerAnswer['state'] | 'ping-failed';
export const PEER_STATES: PeerState[] = ['probing', 'answered', 'no-answer', 'refused', 'not-jitterscope', 'ping-failed'];

export interface MeshPeerView {
  name: string;
  address: string;
  /** The ICMP probes': 'probing' (no slow probe asked about yet), the peer's last answer's state, or ping's failure. */
  state: PeerState;
  detail: string | null;
  /** The UDP probes': the same, and 'no-answer' when no probe ever came back (no responder there). */
  udpState: PeerState;
  udpDetail: string | null;
  /** The ICMP probes' echo id. */
  echoId: number;
  /** The UDP probes' destination: the peer's responder (its serve's port). */
  udpPort: number;
  sent: number;
  replies: number;
  lost: number;
  slow: number;
  /** Slow probes by side, since the peer was chosen. */
  bySide: Record<MeshSide, number>;
  /** Round trips over the last minute (ms; null before the first reply). */
  rttP50Ms: number | null;
  rttP99Ms: number | null;
  rttMaxMs: number | null;
  /** The newest slow probes, each joined (at most 50). */
  recent: ProbeOutcome[];
  /** The newest lost probes, each with what the peer saw of it (at most 50). */
  recentLost: ProbeOutcome[];
}

export interface MeshView {
  schema: typeof MESH_SCHEMA_ID;
  node: string;
  /** Where the candidates came from: the static list, or dns:NAME, and when it was last read. */
  peersFrom: string;
  candidates: number;
  k: number;
  probesPerSecond: number;
  slowMs: number;
  /** Peer list trouble (a name that does not resolve, a DNS failure), newest last. */
  notes: string[];
  peers: MeshPeerView[];
}
