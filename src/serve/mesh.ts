// serve --mesh: this node probes k peers (chosen by rendezvous hashing of node
// names, diagnose/mesh.ts) with ICMP echo, each from a ping of its own with
// its own echo id, at a random phase and an interval drawn within ±10 % of
// the rate (so no two probers stay in step). A slow or lost probe is asked
// about, 2.5 s later (the peer's interval has closed by then), at the peer's
// serve (/explain, batched, one query in flight per peer) and joined with
// this node's own trace of the reply. Everything kept is bounded: probes
// waiting to be asked about, the newest outcomes, a minute of round trips.
import dns from 'node:dns';
import net from 'node:net';
import os from 'node:os';
import { PeersSpec } from '../base/options';
import type { SlowPacket } from '../diagnose/attribute';
import type { PeerAnswer } from '../diagnose/explain';
import {
  choosePeers,
  joinProbe,
  MESH_SCHEMA_ID,
  MeshPeerView,
  MeshSide,
  MeshView,
  PeerCandidate,
  PeerState,
  ProbeOutcome,
  repliesHeldHere,
} from '../diagnose/mesh';
import { pingStream } from '../host/iputils';
import type { MeshSink } from './metrics';
import { askPeer } from './peer';

/** How often a dns: name is read again, and the peer set chosen again. */
const RESOLVE_MS = 30_000;
/** A probe is asked about this long after it was sent: the peer's interval (a second) has closed and been folded. */
const ASK_AFTER_MS = 2500;
/** A request with no reply this long after ping said so is lost. */
const LOST_AFTER_MS = 2000;
/** Probes waiting to be asked about, per peer; past this the oldest are given up (side unknown). */
const MAX_WAITING = 2000;
const RECENT = 50;
const RTT_KEPT = 1200;
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
  /** This node's attributed slow packets of the recent window (null before the first interval). */
  localPackets(): SlowPacket[] | null;
  sink: MeshSink;
  /** Asks a peer's serve; serve/peer.ts's askPeer unless a test says otherwise. */
  ask?: typeof askPeer;
}

interface Waiting {
  rttMs: number | null;
  sentAt: number;
}

function ownAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) out.add(a.address);
  return out;
}

class PeerProber {
  readonly echoId = 1 + Math.floor(Math.random() * 65534);
  state: PeerState = 'probing';
  detail: string | null = null;
  replies = 0;
  lost = 0;
  slow = 0;
  readonly bySide: Record<MeshSide, number> = { peer: 0, here: 0, between: 0, unknown: 0 };
  readonly recent: ProbeOutcome[] = [];
  private readonly rtts: { at: number; ms: number }[] = [];
  /** Slow and lost probes to ask about, by 16-bit sequence number. */
  private readonly waiting = new Map<number, Waiting>();
  /** Requests ping said had no reply yet: when it said so. */
  private readonly unanswered = new Map<number, number>();
  private asking = false;
  private ping: { stop(): void } | undefined;
  private startTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly peer: PeerCandidate,
    private readonly settings: MeshSettings,
    private readonly deps: MeshDeps,
  ) {
    deps.sink.touch(peer.name);
  }

  start(): void {
    const base = 1000 / this.settings.probesPerSecond;
    const intervalMs = Math.max(2, Math.round(base * (0.9 + Math.random() * 0.2)));
    this.startTimer = setTimeout(() => {
      this.ping = pingStream(
        { address: this.peer.address, family: net.isIPv6(this.peer.address) ? 6 : 4, id: this.echoId, intervalMs, sizeBytes: 16 },
        {
          reply: (r) => this.onReply(r.seq & 0xffff, r.rttMs),
          noAnswer: (seq) => this.unanswered.set(seq & 0xffff, Date.now()),
          exit: (why) => {
            this.state = 'ping-failed';
            this.detail = why;
          },
        },
      );
    }, Math.random() * base);
  }

  stop(): void {
    clearTimeout(this.startTimer);
    this.ping?.stop();
  }

  private onReply(seq: number, rttMs: number): void {
    this.unanswered.delete(seq);
    this.replies++;
    this.deps.sink.reply(this.peer.name, rttMs);
    const now = Date.now();
    this.rtts.push({ at: now, ms: rttMs });
    if (this.rtts.length > RTT_KEPT) this.rtts.shift();
    if (rttMs >= this.settings.slowMs) this.wait(seq, { rttMs, sentAt: now - rttMs });
  }

  private wait(seq: number, w: Waiting): void {
    this.waiting.set(seq, w);
    // a peer that never answers must not grow this: the oldest are given up
    for (const [old, ow] of this.waiting) {
      if (this.waiting.size <= MAX_WAITING) break;
      this.waiting.delete(old);
      this.record(joinProbe(old, ow.rttMs, null, undefined));
    }
  }

  private record(o: ProbeOutcome): void {
    if (o.rttMs !== null) {
      this.slow++;
      this.bySide[o.side]++;
      this.deps.sink.slow(this.peer.name, o);
    }
    this.recent.push(o);
    if (this.recent.length > RECENT) this.recent.shift();
  }

  /** Once a second: requests past their time are lost; probes old enough are asked about. */
  tick(now: number): void {
    for (const [seq, at] of this.unanswered)
      if (now - at >= LOST_AFTER_MS) {
        this.unanswered.delete(seq);
        this.lost++;
        this.deps.sink.lost(this.peer.name);
        this.wait(seq, { rttMs: null, sentAt: at });
      }
    if (this.asking) return;
    const ready = [...this.waiting].filter(([, w]) => now - w.sentAt >= ASK_AFTER_MS);
    if (!ready.length) return;
    this.asking = true;
    void this.ask(ready).finally(() => (this.asking = false));
  }

  private async ask(ready: [number, Waiting][]): Promise<void> {
    const base = new URL(`http://${net.isIPv6(this.peer.address) ? `[${this.peer.address}]` : this.peer.address}:${this.settings.port}/`);
    const answer: PeerAnswer = await (this.deps.ask ?? askPeer)(
      base,
      this.echoId,
      ready.map(([seq]) => seq),
    );
    this.state = answer.state;
    this.detail = answer.detail;
    const bySeq = new Map(answer.state === 'answered' ? answer.probes.map((p) => [p.seq, p]) : []);
    const here = repliesHeldHere(this.deps.localPackets() ?? [], this.peer.address, this.echoId);
    for (const [seq, w] of ready) {
      this.waiting.delete(seq);
      this.record(joinProbe(seq, w.rttMs, answer.state === 'answered' ? (bySeq.get(seq) ?? null) : null, w.rttMs === null ? undefined : here.get(seq)));
    }
  }

  view(now: number): MeshPeerView {
    const last = this.rtts.filter((r) => now - r.at <= 60_000).map((r) => r.ms);
    last.sort((a, b) => a - b);
    const q = (f: number) => (last.length ? last[Math.min(last.length - 1, Math.floor(f * last.length))] : null);
    return {
      name: this.peer.name,
      address: this.peer.address,
      state: this.state,
      detail: this.detail,
      echoId: this.echoId,
      sent: this.replies + this.lost,
      replies: this.replies,
      lost: this.lost,
      slow: this.slow,
      bySide: { ...this.bySide },
      rttP50Ms: q(0.5),
      rttP99Ms: q(0.99),
      rttMaxMs: last.length ? last[last.length - 1] : null,
      recent: [...this.recent],
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
      const p = new PeerProber(c, this.settings, this.deps);
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
