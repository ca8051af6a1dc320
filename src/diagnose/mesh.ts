// The mesh: each node probes a few peers (k of N, chosen by rendezvous
// hashing of node names, so the set stays stable as nodes come and go), with
// ICMP echo and UDP to the peer's responder, and each slow probe is joined
// with what the peer's own trace says held it (asked by packet identity: this
// node's address, and the echo id and sequence or the UDP source port;
// diagnose/explain.ts) and with this node's trace of the reply. Never by
// comparing clocks. Pure logic: the choice of peers, a slow probe's side and
// culprit, and the /mesh view's shape.
import { createHash } from 'node:crypto';
import type { SlowPacket } from './attribute';
import type { PeerAnswer, ProbeAnswer } from './explain';

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
 * answer) and this node's slow packet for its reply, if any. A side holds a
 * probe only when its wait explains at least half of what the probe took over
 * the usual round trip (`usualMs`, the recent median): a 1 ms late run does
 * not explain a 12 ms probe. Where both hold it, the longer wait is the side.
 */
export function joinProbe(
  proto: MeshProto,
  seq: number,
  rttMs: number | null,
  peer: ProbeAnswer | null,
  here: SlowPacket | undefined,
  usualMs = 0,
  herePausedMs = 0,
): ProbeOutcome {
  const enough = rttMs === null ? 0 : 0.5 * Math.max(0, rttMs - usualMs);
  const peerWait = peer?.state === 'slow' && (peer.waitMs ?? 0) >= enough ? (peer.waitMs ?? 0) : -1;
  const hereWait = here && (here.waitNs ?? 0) / 1e6 >= enough ? (here.waitNs ?? 0) / 1e6 : -1;
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
