// serve --mesh: this node probes k peers (chosen by rendezvous hashing of node
// names, diagnose/mesh.ts) with ICMP echo, each from a ping of its own with
// its own echo id, at a random phase and an interval drawn within ±10 % of
// the rate, and with UDP to the peer's responder (this module's, on its
// serve's port), each probe from a new source port and jittered (so no two
// probers stay in step, and UDP probes reach every receive queue). A slow or
// lost probe is asked about, 2.5 s later (the peer's interval has closed by
// then), at the peer's serve (/explain, a batch a second per protocol, one
// query in flight) and joined with this node's own trace of the reply. Everything kept is bounded: probes
// waiting to be asked about, the newest outcomes, a minute of round trips.
import dns from 'node:dns';
import net from 'node:net';
import os from 'node:os';
import { PeersSpec } from '../base/options';
import { SlowPacket, StallRow } from '../diagnose/attribute';
import { EXPLAIN_MAX_SEQS, PeerAnswer } from '../diagnose/explain';
import {
  choosePeers,
  heldHere,
  joinProbe,
  MESH_SCHEMA_ID,
  MeshPeerView,
  MeshProto,
  MeshSide,
  MeshView,
  PeerCandidate,
  PeerState,
  ProbeOutcome,
  proberWakeups,
  repliesHeldHere,
} from '../diagnose/mesh';
import type { WakeupRow } from '../diagnose/wakeup';
import { pingStream } from '../host/iputils';
import type { MeshSink } from './metrics';
import { askPeer } from './peer';
import type { MeshUdp } from './mesh-udp';

/** How often a dns: name is read again, and the peer set chosen again. */
const RESOLVE_MS = 30_000;
/** A probe is asked about this long after it was sent: the peer's interval (a second) has closed and been folded. */
const ASK_AFTER_MS = 2500;
/** A request with no reply this long after ping said so is lost. */
const LOST_AFTER_MS = 2000;
/** Probes waiting to be asked about, per peer and protocol; past this the oldest are given up (side unknown). */
const MAX_WAITING = 2000;
const RECENT = 50;
/** Round trips kept for the view's quantiles: a minute at the highest rate. */
const RTT_KEPT = 3000;
const NOTES_KEPT = 10;

export interface MeshSettings {
  /** This node's name (the rendezvous hash's own half). */
  node: string;
  peers: PeersSpec;
  k: number;
  probesPerSecond: number;
  slowMs: number;
  /** The port of the peers' serve (the same as this one's). */
  port: number;
}

/** What the mesh reads from the exporter. */
export interface MeshDeps {
  /**
   * This node's attributed slow packets of the recent window, its stall rows and its own threads'
   * attributed slow wake-ups (the UDP prober's among them) (null before the first interval).
   */
  localWindow(): { packets: SlowPacket[]; stalls: StallRow[]; ownWakeups: WakeupRow[] } | null;
  sink: MeshSink;
  /** The UDP worker: the responder, and this node's UDP probes. */
  udp: MeshUdp;
  /** Asks a peer's serve; serve/peer.ts's askPeer unless a test says otherwise. */
  ask?: typeof askPeer;
}

interface Waiting {
  rttMs: number | null;
  sentAt: number;
}

/** One protocol's probes to a peer: what identifies them there, those waiting to be asked about, and how the peer last answered about them. */
interface Lane {
  proto: MeshProto;
  /** icmp: this prober's echo id; udp: the peer's responder port. */
  key: number;
  waiting: Map<number, Waiting>;
  asking: boolean;
  state: PeerState;
  detail: string | null;
}

/** UDP probes sent with no reply at all: the peer has no responder (a serve without --mesh, or an older one); UDP to it pauses this long. */
const NO_RESPONDER_AFTER = 20;
const NO_RESPONDER_PAUSE_MS = 60_000;
/** A ping that exits is started again after this long. */
const PING_RESTART_MS = 10_000;

function ownAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) out.add(a.address);
  return out;
}

class PeerProber {
  readonly echoId = 1 + Math.floor(Math.random() * 65534);
  replies = 0;
  lost = 0;
  slow = 0;
  readonly bySide: Record<MeshSide, number> = { peer: 0, here: 0, between: 0, unknown: 0 };
  readonly recent: ProbeOutcome[] = [];
  readonly recentLost: ProbeOutcome[] = [];
  private readonly rtts: { at: number; ms: number }[] = [];
  private readonly lanes: Record<MeshProto, Lane>;
  /** ICMP requests ping said had no reply yet: when it said so. */
  private readonly unanswered = new Map<number, number>();
  private udpSent = 0;
  private udpReplies = 0;
  /** Why the ICMP probes stopped (ping could not run, or exited), until a reply comes again. */
  private pingFailed: string | null = null;
  private ping: { stop(): void } | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private udpTimer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();
  private stopped = false;
  private readonly family: 4 | 6;
  private readonly baseMs: number;

  /** Its name in the view and the metrics: the candidate's, or, for a peer known by address only (dns:), the node name its serve gives. */
  private name: string;

  constructor(
    readonly peer: PeerCandidate,
    private readonly settings: MeshSettings,
    private readonly deps: MeshDeps,
    /** Whether another prober already goes by this name. */
    private readonly taken: (name: string) => boolean = () => false,
  ) {
    this.name = peer.name;
    this.family = net.isIPv6(peer.address) ? 6 : 4;
    const lane = (proto: MeshProto, key: number): Lane => ({ proto, key, waiting: new Map(), asking: false, state: 'probing', detail: null });
    this.lanes = { icmp: lane('icmp', this.echoId), udp: lane('udp', settings.port) };
    // each protocol at half the rate
    this.baseMs = 2000 / settings.probesPerSecond;
    deps.sink.touch(peer.name);
  }

  get label(): string {
    return this.name;
  }

  /** A peer known by its address only takes the node name its serve answers with (once; not a name another peer has). */
  private learnName(answer: PeerAnswer): void {
    const node = answer.state === 'answered' ? answer.node : null;
    if (!node || this.peer.name !== this.peer.address || this.name !== this.peer.address || this.taken(node)) return;
    this.deps.sink.forget(this.name);
    this.name = node;
    this.deps.sink.touch(node);
  }

  /** Both protocols at a random phase; ICMP at an interval drawn within ±10 %, UDP jittered probe by probe. */
  start(): void {
    // by address only: ask its serve its name before the first probe is counted (a peer without one keeps its address)
    if (this.peer.name === this.peer.address)
      void (this.deps.ask ?? askPeer)(this.baseUrl(), this.echoId, [0], 'icmp', this.abort.signal).then(
        (a) => this.stopped || this.learnName(a),
        () => undefined,
      );
    this.pingTimer = setTimeout(() => this.startPing(), Math.random() * this.baseMs);
    this.nextUdp(Math.random() * this.baseMs);
  }

  private startPing(): void {
    if (this.stopped) return;
    const intervalMs = Math.max(2, Math.round(this.baseMs * (0.9 + Math.random() * 0.2)));
    this.ping = pingStream(
      { address: this.peer.address, family: this.family, id: this.echoId, intervalMs, sizeBytes: 16 },
      {
        reply: (r) => {
          this.pingFailed = null;
          this.onReply(this.lanes.icmp, r.seq & 0xffff, r.rttMs);
        },
        noAnswer: (seq) => this.unanswered.set(seq & 0xffff, Date.now()),
        exit: (why) => {
          this.pingFailed = `${why}; started again every ${PING_RESTART_MS / 1000} s`;
          this.pingTimer = setTimeout(() => this.startPing(), PING_RESTART_MS);
        },
      },
    );
  }

  private nextUdp(delay: number): void {
    if (this.stopped) return;
    this.udpTimer = setTimeout(() => {
      // a peer that never replied has no responder: asking it would only read "between"
      if (this.udpSent >= NO_RESPONDER_AFTER && !this.udpReplies) {
        this.lanes.udp.state = 'no-answer';
        this.lanes.udp.detail = `no reply to ${this.udpSent} UDP probes: no responder there (a serve without --mesh, or an older one); tried again in ${NO_RESPONDER_PAUSE_MS / 1000} s`;
        this.udpSent = 0;
        return this.nextUdp(NO_RESPONDER_PAUSE_MS);
      }
      this.sendUdp();
      this.nextUdp(this.baseMs * (0.9 + Math.random() * 0.2));
    }, delay);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.pingTimer);
    clearTimeout(this.udpTimer);
    this.ping?.stop();
    this.abort.abort();
    this.deps.sink.forget(this.name);
  }

  /** One UDP probe, timed in the mesh's UDP worker (off this loop). */
  private sendUdp(): void {
    this.udpSent++;
    const sentAt = Date.now();
    this.deps.udp.send(this.peer.address, this.settings.port, (r) => {
      if (this.stopped) return;
      if (r.rttMs === null) return this.onLost(this.lanes.udp, r.sport, sentAt);
      this.udpReplies++;
      this.onReply(this.lanes.udp, r.sport, r.rttMs);
    });
  }

  private onReply(lane: Lane, seq: number, rttMs: number): void {
    if (lane.proto === 'icmp') this.unanswered.delete(seq);
    this.replies++;
    this.deps.sink.reply(this.name, rttMs);
    const now = Date.now();
    this.rtts.push({ at: now, ms: rttMs });
    if (this.rtts.length > RTT_KEPT) this.rtts.shift();
    if (rttMs >= this.settings.slowMs) this.wait(lane, seq, { rttMs, sentAt: now - rttMs });
  }

  private onLost(lane: Lane, seq: number, sentAt: number): void {
    this.lost++;
    this.deps.sink.lost(this.name);
    this.wait(lane, seq, { rttMs: null, sentAt });
  }

  private wait(lane: Lane, seq: number, w: Waiting): void {
    lane.waiting.set(seq, w);
    // a peer that never answers must not grow this: the oldest are given up
    for (const [old, ow] of lane.waiting) {
      if (lane.waiting.size <= MAX_WAITING) break;
      lane.waiting.delete(old);
      this.record(joinProbe(lane.proto, old, ow.rttMs, null, undefined));
    }
  }

  private record(o: ProbeOutcome): void {
    const list = o.rttMs === null ? this.recentLost : this.recent;
    if (o.rttMs !== null) {
      this.slow++;
      this.bySide[o.side]++;
      this.deps.sink.slow(this.name, o);
    }
    list.push(o);
    if (list.length > RECENT) list.shift();
  }

  /** Once a second: ICMP requests past their time are lost; one batch of probes old enough is asked about, per protocol. */
  tick(now: number): void {
    for (const [seq, at] of this.unanswered)
      if (now - at >= LOST_AFTER_MS) {
        this.unanswered.delete(seq);
        this.onLost(this.lanes.icmp, seq, at);
      }
    for (const lane of Object.values(this.lanes)) {
      if (lane.asking) continue;
      const ready: [number, Waiting][] = [];
      for (const e of lane.waiting) if (now - e[1].sentAt >= ASK_AFTER_MS && ready.push(e) >= EXPLAIN_MAX_SEQS) break;
      if (!ready.length) continue;
      lane.asking = true;
      this.ask(lane, ready)
        .catch((e: Error) => {
          lane.state = 'no-answer';
          lane.detail = e.message;
        })
        .finally(() => (lane.asking = false));
    }
  }

  private baseUrl(): URL {
    return new URL(`http://${this.family === 6 ? `[${this.peer.address}]` : this.peer.address}:${this.settings.port}/`);
  }

  private async ask(lane: Lane, ready: [number, Waiting][]): Promise<void> {
    const answer: PeerAnswer = await (this.deps.ask ?? askPeer)(
      this.baseUrl(),
      lane.key,
      ready.map(([seq]) => seq),
      lane.proto,
      this.abort.signal,
    );
    if (this.stopped) return;
    this.learnName(answer);
    lane.state = answer.state;
    lane.detail = answer.detail;
    const bySeq = new Map(answer.state === 'answered' ? answer.probes.map((p) => [p.seq, p]) : []);
    const local = this.deps.localWindow();
    const here = repliesHeldHere(local?.packets ?? [], this.peer.address, lane.proto, lane.key);
    // a UDP reply can also wait for the prober's thread, woken late on its CPU
    const wakes = lane.proto === 'udp' ? proberWakeups(local?.ownWakeups ?? []) : new Map<number, WakeupRow>();
    const usual = this.usualRttMs(Date.now());
    for (const [seq, w] of ready) {
      // given up meanwhile (the cap), or a new probe with the same port or sequence: not this answer's
      if (lane.waiting.get(seq) !== w) continue;
      lane.waiting.delete(seq);
      const there = answer.state === 'answered' ? (bySeq.get(seq) ?? null) : null;
      const held = w.rttMs === null ? undefined : heldHere(here.get(seq), wakes.get(seq), local?.stalls ?? []);
      this.record(joinProbe(lane.proto, seq, w.rttMs, there, held?.held, usual, held?.pausedMs ?? 0));
    }
  }

  /** The median round trip of the last minute (0 before any). */
  private usualRttMs(now: number): number {
    const last = this.lastMinute(now);
    return last.length ? last[Math.floor(last.length / 2)] : 0;
  }

  /** The last minute's round trips, sorted. */
  private lastMinute(now: number): number[] {
    return this.rtts
      .filter((r) => now - r.at <= 60_000)
      .map((r) => r.ms)
      .sort((a, b) => a - b);
  }

  view(now: number): MeshPeerView {
    const last = this.lastMinute(now);
    const q = (f: number) => (last.length ? last[Math.min(last.length - 1, Math.floor(f * last.length))] : null);
    const icmp = this.lanes.icmp;
    const udp = this.lanes.udp;
    return {
      name: this.name,
      address: this.peer.address,
      state: this.pingFailed ? 'ping-failed' : icmp.state,
      detail: this.pingFailed ?? icmp.detail,
      udpState: udp.state,
      udpDetail: udp.detail,
      echoId: this.echoId,
      udpPort: this.settings.port,
      sent: this.replies + this.lost,
      replies: this.replies,
      lost: this.lost,
      slow: this.slow,
      bySide: { ...this.bySide },
      rttP50Ms: q(0.5),
      rttP99Ms: q(0.99),
      rttMaxMs: last.length ? last[last.length - 1] : null,
      recent: [...this.recent],
      recentLost: [...this.recentLost],
    };
  }
}

export class Mesh {
  private probers = new Map<string, PeerProber>();
  private candidates: PeerCandidate[] = [];
  private readAt: Date | null = null;
  private readonly notes: string[] = [];
  private tickTimer: NodeJS.Timeout | undefined;
  private resolveTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** A DNS server that does not answer costs at most 2 x 2 s a read. */
  private readonly resolver = new dns.promises.Resolver({ timeout: 2000, tries: 2 });

  constructor(
    private readonly settings: MeshSettings,
    private readonly deps: MeshDeps,
  ) {}

  /** Reads the peers and starts probing; waits for the first read at most 2 s (a slow DNS server must not hold serve's start). */
  async start(): Promise<void> {
    const first = this.resolve();
    await Promise.race([first, new Promise((r) => setTimeout(r, 2000).unref())]);
    this.tickTimer = setInterval(() => {
      const now = Date.now();
      for (const p of this.probers.values()) p.tick(now);
    }, 1000);
    this.resolveTimer = setInterval(() => void this.resolve(), RESOLVE_MS);
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.tickTimer);
    clearInterval(this.resolveTimer);
    this.resolver.cancel();
    for (const p of this.probers.values()) p.stop();
    this.probers.clear();
  }

  private note(text: string): void {
    if (this.notes[this.notes.length - 1] === text) return;
    this.notes.push(text);
    if (this.notes.length > NOTES_KEPT) this.notes.shift();
  }

  private async candidatesNow(): Promise<PeerCandidate[]> {
    const spec = this.settings.peers;
    if ('dns' in spec) {
      const all: PeerCandidate[] = [];
      for (const family of [4, 6] as const)
        try {
          const addrs = await (family === 4 ? this.resolver.resolve4(spec.dns) : this.resolver.resolve6(spec.dns));
          all.push(...addrs.map((a) => ({ name: a, address: a })));
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code !== 'ENODATA' && code !== 'ENOTFOUND') this.note(`dns:${spec.dns}: ${code ?? (e as Error).message} (IPv${family})`);
        }
      if (!all.length) this.note(`dns:${spec.dns}: no A or AAAA records (is the headless Service there, and its pods ready?)`);
      return all;
    }
    const out: PeerCandidate[] = [];
    for (const e of spec.list) {
      if (net.isIP(e.host)) {
        out.push({ name: e.name ?? e.host, address: e.host });
        continue;
      }
      try {
        const { address } = await dns.promises.lookup(e.host);
        out.push({ name: e.name ?? e.host, address });
      } catch (err) {
        this.note(`--peers: ${e.host} does not resolve (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); tried again in 30 s`);
      }
    }
    return out;
  }

  private async resolve(): Promise<void> {
    const found = await this.candidatesNow();
    if (this.stopped) return;
    // a failed read keeps the peers of the last good one
    if (!found.length && this.candidates.length) return;
    this.candidates = found;
    this.readAt = new Date();
    const chosen = choosePeers(this.settings.node, ownAddresses(), found, this.settings.k);
    const keep = new Set(chosen.map((c) => `${c.name}@${c.address}`));
    for (const [key, p] of this.probers)
      if (!keep.has(key)) {
        p.stop();
        this.probers.delete(key);
      }
    for (const c of chosen) {
      const key = `${c.name}@${c.address}`;
      if (this.probers.has(key)) continue;
      const p = new PeerProber(c, this.settings, this.deps, (name) => [...this.probers.values()].some((o) => o.label === name));
      this.probers.set(key, p);
      p.start();
    }
  }

  view(): MeshView {
    const spec = this.settings.peers;
    const now = Date.now();
    return {
      schema: MESH_SCHEMA_ID,
      node: this.settings.node,
      peersFrom: `${'dns' in spec ? `dns:${spec.dns}` : '--peers list'}${this.readAt ? `, read ${this.readAt.toISOString()}` : ', not read yet'}`,
      candidates: this.candidates.length,
      k: this.settings.k,
      probesPerSecond: this.settings.probesPerSecond,
      slowMs: this.settings.slowMs,
      notes: [...this.notes],
      peers: [...this.probers.values()].map((p) => p.view(now)),
    };
  }
}
