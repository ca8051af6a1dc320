// `jitterscope ping`'s replies, each matched to its request and reply packets
// and tied to what held their CPU(s), and the verdict over them, summed up for
// an incident ticket. Pure logic: the command gathers
// the host's facts (RPS masks, interface names, IPVS switch) and passes them.
import { HostFacts } from '../base/host-facts';
import { pct } from '../base/format';
import { Packet } from '../stream/aggregate';
import type { PingReply } from '../host/iputils';
import {
  CulpritId,
  CulpritRuns,
  EngineOptions,
  explainWait,
  indexStalls,
  leadingOverlap,
  Overlap,
  packetWindow,
  PauseFinding,
  pauseFinding,
  SelfFinding,
  selfFinding,
  StallRow,
} from './attribute';
import { pausesLine, RpsFinding, rpsFinding, rpsLine, selfLine, verdictAdvice } from './verdict';

export interface ReplyRow {
  seq: number;
  rttMs: number | null; // null: lost
  wallTime: string | null;
  slow: boolean;
  requestCpu: number | null; // CPU that processed the echo request, when seen on this host
  replyCpu: number | null; // CPU that processed the echo reply
  arrivalCpus: number[];
  waitMs: number | null; // time the request and reply spent between arrival and processing
  /** waitMs is an upper bound (see Packet.path), held to the round-trip time. */
  waitBound: boolean;
  overlaps: Overlap[]; // longest first
  attribution: Overlap | null;
}

export interface AttributionOptions extends EngineOptions {
  id: number;
  slowMs: number;
}

/** A wait measured as an upper bound: from the raise of the poll or late run that found it. */
const isBound = (p: Packet) => p.path === 'napi-bound' || p.path === 'late-run';

const ECHO_REQUEST = new Set([8, 128]); // ICMP, ICMPv6
const ECHO_REPLY = new Set([0, 129]);

export function attributeReplies(sent: number, replies: PingReply[], packets: Packet[], stalls: StallRow[], opts: AttributionOptions): ReplyRow[] {
  const bySeq = new Map<number, { req: Packet[]; rep: Packet[] }>();
  for (const p of packets) {
    if (p.id !== opts.id || p.type === null || p.seq === null) continue;
    const request = ECHO_REQUEST.has(p.type);
    if (!request && !ECHO_REPLY.has(p.type)) continue;
    const e = bySeq.get(p.seq) ?? { req: [], rep: [] };
    (request ? e.req : e.rep).push(p);
    bySeq.set(p.seq, e);
  }
  const index = indexStalls(stalls);
  const replyBySeq = new Map(replies.map((r) => [r.seq, r]));
  const rows: ReplyRow[] = [];
  for (let seq = 1; seq <= sent; seq++) {
    const r = replyBySeq.get(seq);
    // ping's 16-bit sequence wraps; so do the kernel's fields
    const pk = bySeq.get(seq & 0xffff) ?? { req: [], rep: [] };
    const both = [...pk.req, ...pk.rep];
    // arrival unseen: the whole round trip before processing is suspect. A bound wait (a
    // poll's later packet, timed from the poll's raise) may start before the request was
    // sent. Neither can reach back past the exchange: it began at most one round trip
    // before the last of its packets was processed (the reply, just before ping read it)
    const rttNs = r ? r.rttMs * 1e6 : Infinity;
    const raw = both.map((p) => packetWindow(p, (r?.rttMs ?? 0) * 1e6));
    const began = Math.max(...raw.map((w) => w.to)) - rttNs;
    const windows = raw.map((w) => ({ ...w, from: Math.max(w.from, began) }));
    const waits = both.filter((p) => p.waitNs !== null);
    const waitBound = waits.some(isBound);
    const sumMs = waits.reduce((s, p) => s + p.waitNs!, 0) / 1e6;
    const waitMs = waits.length ? (waitBound && r ? Math.min(sumMs, r.rttMs) : sumMs) : null;
    const slow = r ? r.rttMs >= opts.slowMs : false;
    const { overlaps, attribution } = explainWait(windows, waitMs, index, opts);
    rows.push({
      seq,
      rttMs: r?.rttMs ?? null,
      wallTime: r ? new Date(r.wallMs).toISOString() : null,
      slow,
      requestCpu: pk.req[0]?.cpu ?? null,
      replyCpu: pk.rep[0]?.cpu ?? null,
      arrivalCpus: [...new Set(both.map((p) => p.arrivalCpu))].sort((a, b) => a - b),
      waitMs,
      waitBound,
      overlaps: overlaps.slice(0, 5),
      attribution: slow ? attribution : null,
    });
  }
  return rows;
}

/** Ping's culprit: the one most slow replies are attributed to. */
export interface ReplyCulprit extends CulpritId {
  /** Slow replies attributed to it. */
  replies: number;
  share: number; // of slow replies
  runs: CulpritRuns;
}

/** The culprit most slow replies are attributed to, with the distribution of its runs. */
export function leadingCulprit(rows: ReplyRow[], stalls: StallRow[]): ReplyCulprit | null {
  const slow = rows.filter((r) => r.slow);
  const lead = leadingOverlap(
    slow.map((r) => r.attribution),
    stalls,
  );
  if (!lead) return null;
  const o = lead.overlap;
  return { culprit: o.culprit, kind: o.kind, cpu: o.cpu, replies: lead.explained, share: lead.explained / slow.length, runs: lead.runs };
}

export interface PingVerdict {
  sent: number;
  received: number;
  lost: number;
  slowMs: number;
  slow: number;
  slowShare: number;
  attributed: number;
  culprit: ReplyCulprit | null;
  rps: RpsFinding | null;
  /** Slow replies that waited on a CPU taking no interrupt (host pause or IRQs off). */
  pauses: PauseFinding | null;
  /** Slow replies that waited while jitterscope's own process held their CPU. */
  self: SelfFinding | null;
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
  lines.push(`jitterscope ping ${target}: ${v.received} of ${v.sent} replies, ${v.lost} lost; ${v.slow} slow (>= ${v.slowMs} ms, ${pct(v.slowShare)}).`);
  if (!v.slow) lines.push('No slow replies: no culprit to name.');
  else if (!v.culprit)
    lines.push(
      v.pauses || v.self
        ? `No culprit in this kernel: no softirq or timer callback on the CPUs that handled them explains the ${v.slow} slow replies.`
        : `No culprit found: none of the ${v.slow} slow replies overlapped a long softirq or timer callback on the CPUs that handled them; the delay is elsewhere (sender, network, or the remote host).`,
    );
  else {
    const c = v.culprit;
    lines.push(
      `Culprit: ${c.culprit} on CPU ${c.cpu} (${c.kind}) delayed ${c.replies} of ${v.slow} slow replies (${pct(c.share)}); ` +
        `its runs: ${c.runs.count}, p50 ${c.runs.p50Ms.toFixed(1)} ms, max ${c.runs.maxMs.toFixed(1)} ms.`,
    );
    const others = v.attributed - c.replies - (v.pauses?.count ?? 0) - (v.self?.count ?? 0);
    if (others > 0) lines.push(`Other culprits explain ${others} more slow replies (see the report).`);
  }
  if (v.pauses) lines.push(pausesLine(v.pauses, v.slow, 'slow replies'));
  if (v.self) lines.push(selfLine(v.self, 'slow replies'));
  if (v.rps) lines.push(rpsLine(v.rps, v.culprit?.cpu));
  for (const a of v.advice) lines.push(`Advice: ${a}`);
  return lines.join('\n');
}

/** What the ping run gave: requests sent, replies received, the slow threshold, the reply interface. */
export interface PingRunFacts {
  target: string;
  sent: number;
  received: number;
  slowMs: number;
  /** The interface the replies came in on (-I, or the one the kernel saw), if known. */
  ifname: string | null;
}

/** The verdict over attributed reply rows: the leading culprit, pauses, RPS and advice. */
export function pingVerdictOf(run: PingRunFacts, rows: ReplyRow[], stalls: StallRow[], facts: HostFacts): PingVerdict {
  const culprit = leadingCulprit(rows, stalls);
  const slowRows = rows.filter((r) => r.slow);
  const pauses = pauseFinding(
    slowRows.map((r) => r.attribution),
    stalls,
  );
  return pingVerdict(run.target, {
    sent: run.sent,
    received: run.received,
    lost: run.sent - run.received,
    slowMs: run.slowMs,
    slow: slowRows.length,
    slowShare: run.received ? slowRows.length / run.received : 0,
    attributed: slowRows.filter((r) => r.attribution).length,
    culprit,
    rps: run.ifname ? rpsFinding(run.ifname, culprit, facts) : null,
    pauses,
    self: selfFinding(
      slowRows.map((r) => r.attribution),
      stalls,
    ),
    advice: verdictAdvice(culprit && { ...culprit, count: culprit.replies }, pauses, { ipvsSwitch: facts.ipvsSwitch }),
  });
}
