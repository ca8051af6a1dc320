// Attribution: which timer callback or softirq ran on a packet's CPU while it
// waited. Today's user is `jitterscope ping` (each reply: which CPU handled
// the request and the reply, how long they waited, and what held that CPU).
// Pure logic: no kernel here.
import { IcmpPacket, StallKind } from '../stream/aggregate';

/** A run of a softirq or timer callback long enough to matter, by name. */
export interface StallRow {
  cpu: number;
  kind: StallKind;
  /** "NET_RX softirq", "bpf_timer_cb", "estimation_timer [ip_vs]", or an address. */
  culprit: string;
  startNs: number;
  durationNs: number;
}

export interface PingReply {
  seq: number;
  rttMs: number;
  /** Wall-clock receive time from ping -D (ms since the epoch). */
  wallMs: number;
}

export interface Overlap {
  culprit: string;
  kind: StallRow['kind'];
  cpu: number;
  overlapMs: number;
  durationMs: number;
}

export interface ReplyRow {
  seq: number;
  rttMs: number | null; // null: lost
  wallTime: string | null;
  slow: boolean;
  requestCpu: number | null; // CPU that processed the echo request, when seen on this host
  replyCpu: number | null; // CPU that processed the echo reply
  arrivalCpus: number[];
  waitMs: number | null; // time the request and reply spent between arrival and processing
  overlaps: Overlap[]; // longest first
  attribution: Overlap | null;
}

export interface AttributionOptions {
  id: number;
  slowMs: number;
  /** An overlap counts when at least this long... */
  minOverlapMs?: number;
  /** ...and at least this share of the wait it explains. */
  minShareOfWait?: number;
}

interface Window {
  cpu: number;
  arrivalCpu: number;
  from: number;
  to: number;
}

/** The [arrival, processing] windows of a packet on the CPUs that touched it. */
function windowsOf(p: IcmpPacket, rttNs: number): Window[] {
  const end = p.startNs + (p.waitNs ?? 0);
  // arrival unseen: the whole round trip before processing is suspect
  const from = p.waitNs === null ? end - rttNs : p.startNs;
  return [{ cpu: p.cpu, arrivalCpu: p.arrivalCpu, from, to: end }];
}

/** A timer callback covering this much of its softirq's overlap is named instead of the softirq. */
const INNER_SHARE = 0.8;

export function attributeReplies(
  sent: number,
  replies: PingReply[],
  packets: IcmpPacket[],
  stalls: StallRow[],
  opts: AttributionOptions,
): ReplyRow[] {
  const minOverlapMs = opts.minOverlapMs ?? 0.5;
  const minShare = opts.minShareOfWait ?? 0.25;
  const bySeq = new Map<number, { req: IcmpPacket[]; rep: IcmpPacket[] }>();
  for (const p of packets) {
    if (p.id !== opts.id || (p.type !== 8 && p.type !== 0)) continue;
    const e = bySeq.get(p.seq) ?? { req: [], rep: [] };
    (p.type === 8 ? e.req : e.rep).push(p);
    bySeq.set(p.seq, e);
  }
  const stallsByCpu = new Map<number, StallRow[]>();
  for (const s of stalls) (stallsByCpu.get(s.cpu) ?? stallsByCpu.set(s.cpu, []).get(s.cpu)!).push(s);

  const replyBySeq = new Map(replies.map((r) => [r.seq, r]));
  const rows: ReplyRow[] = [];
  for (let seq = 1; seq <= sent; seq++) {
    const r = replyBySeq.get(seq);
    // ping's 16-bit sequence wraps; so do the kernel's fields
    const pk = bySeq.get(seq & 0xffff) ?? { req: [], rep: [] };
    const rttNs = (r?.rttMs ?? 0) * 1e6;
    const wins = [...pk.req, ...pk.rep].flatMap((p) => windowsOf(p, rttNs));
    const waits = [...pk.req, ...pk.rep].filter((p) => p.waitNs !== null);
    const waitMs = waits.length ? waits.reduce((s, p) => s + p.waitNs!, 0) / 1e6 : null;
    const slow = r ? r.rttMs >= opts.slowMs : false;

    const acc = new Map<string, Overlap>();
    for (const w of wins) {
      for (const cpu of new Set([w.cpu, w.arrivalCpu])) {
        for (const s of stallsByCpu.get(cpu) ?? []) {
          const ov = Math.min(w.to, s.startNs + s.durationNs) - Math.max(w.from, s.startNs);
          if (ov <= 0) continue;
          const k = `${s.kind}|${s.culprit}|${cpu}`;
          const o = acc.get(k) ?? { culprit: s.culprit, kind: s.kind, cpu, overlapMs: 0, durationMs: 0 };
          o.overlapMs += ov / 1e6;
          o.durationMs = Math.max(o.durationMs, s.durationNs / 1e6);
          acc.set(k, o);
        }
      }
    }
    const overlaps = [...acc.values()].sort((a, b) => b.overlapMs - a.overlapMs);
    let attribution: Overlap | null = null;
    if (slow) {
      const explains = (o: Overlap) => o.overlapMs >= minOverlapMs && (waitMs === null || o.overlapMs >= minShare * waitMs);
      // a timer callback is the more specific answer than the softirq it ran in;
      // NET_RX is the packet's own processing, not a culprit
      attribution = overlaps.find((o) => o.kind !== 'softirq' && explains(o)) ?? null;
      if (!attribution) {
        const softirq = overlaps.find((o) => o.kind === 'softirq' && o.culprit !== 'NET_RX softirq' && explains(o));
        // a callback that filled most of that softirq's overlap is still the answer, even
        // when it alone falls just short of the share (its run sits inside the softirq's)
        const inner = softirq && overlaps.find((o) => o.kind !== 'softirq' && o.cpu === softirq.cpu && o.overlapMs >= INNER_SHARE * softirq.overlapMs);
        attribution = inner || softirq || null;
      }
    }
    rows.push({
      seq,
      rttMs: r?.rttMs ?? null,
      wallTime: r ? new Date(r.wallMs).toISOString() : null,
      slow,
      requestCpu: pk.req[0]?.cpu ?? null,
      replyCpu: pk.rep[0]?.cpu ?? null,
      arrivalCpus: [...new Set([...pk.req, ...pk.rep].map((p) => p.arrivalCpu))].sort((a, b) => a - b),
      waitMs,
      overlaps: overlaps.slice(0, 5),
      attribution,
    });
  }
  return rows;
}

export interface Culprit {
  culprit: string;
  kind: StallRow['kind'];
  cpu: number;
  /** Slow replies attributed to it. */
  replies: number;
  share: number; // of slow replies
  runs: { count: number; p50Ms: number; maxMs: number };
}

/** The culprit most slow replies are attributed to, with the distribution of its runs. */
export function leadingCulprit(rows: ReplyRow[], stalls: StallRow[]): Culprit | null {
  const slow = rows.filter((r) => r.slow);
  const counts = new Map<string, { o: Overlap; n: number }>();
  for (const r of slow) {
    if (!r.attribution) continue;
    const k = `${r.attribution.kind}|${r.attribution.culprit}|${r.attribution.cpu}`;
    const c = counts.get(k) ?? { o: r.attribution, n: 0 };
    c.n++;
    counts.set(k, c);
  }
  const best = [...counts.values()].sort((a, b) => b.n - a.n)[0];
  if (!best) return null;
  const runs = stalls
    .filter((s) => s.culprit === best.o.culprit && s.cpu === best.o.cpu && s.kind === best.o.kind)
    .map((s) => s.durationNs / 1e6)
    .sort((a, b) => a - b);
  return {
    culprit: best.o.culprit,
    kind: best.o.kind,
    cpu: best.o.cpu,
    replies: best.n,
    share: best.n / slow.length,
    runs: { count: runs.length, p50Ms: runs[Math.floor((runs.length - 1) / 2)] ?? 0, maxMs: runs[runs.length - 1] ?? 0 },
  };
}
