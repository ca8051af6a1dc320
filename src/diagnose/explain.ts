// The join of a slow probe with the node that delayed it, by packet identity
// and never by comparing clocks: a prober asks the peer's `serve` what
// happened to its own echo requests (its address, the echo id, the
// sequence numbers), and the peer answers from its trace. Pure logic: the
// query's checks, the peer's answer, and the prober's reading of it.
import { UsageError } from '../base/errors';
import { CulpritId, packetWindow, pausedNs, SlowPacket, StallRow, WaitWindow } from './attribute';
import { wakeupWindow, WakeupRow } from './wakeup';

export const EXPLAIN_SCHEMA_ID = 'jitterscope.explain/v1';
/** Sequence numbers one query may ask about. */
export const EXPLAIN_MAX_SEQS = 200;

export interface ExplainQuery {
  /** The caller's own address: the only source a peer answers about. */
  source: string;
  /** icmp: echo requests by id and sequence; udp: datagrams to port `id` (the mesh's responder) by source port (`seqs`). */
  proto: 'icmp' | 'udp';
  id: number;
  seqs: number[];
}

/** What the peer knows of one probe. */
export interface ProbeAnswer {
  seq: number;
  /**
   * - slow: it waited in a late receive run here (udp: or its responder was woken late behind a stall);
   * - seen (udp): the responder answered it, and nothing here held it;
   * - not-seen (udp): it never reached the responder (lost on the way, or dropped before the socket);
   * - not-slow: no late run here held it; whether it came is not known (icmp: the kernel answers echo
   *   requests and the trace lists only the held ones; udp: older than the responder's record).
   */
  state: 'slow' | 'not-slow' | 'seen' | 'not-seen';
  cpu: number | null;
  /** Its wait here (ms), an upper bound when `bound`. */
  waitMs: number | null;
  bound: boolean;
  /** What held the CPU meanwhile, when something did. */
  culprit: string | null;
  kind: string | null;
  culpritCpu: number | null;
  /** How much of its wait a host pause on that CPU covered, as this node's trace saw the pause (ms; 0: none). Absent in older peers' answers. */
  pausedMs?: number;
}

export interface ExplainAnswer {
  schema: typeof EXPLAIN_SCHEMA_ID;
  node: string;
  /** How far back the peer looked (its kept window, ms), up to its last finished interval (each a second). */
  windowMs: number;
  /** The peer lists a packet that waited at least this long in a NET_RX run that started late; shorter waits read not-slow. */
  slowThresholdMs: number;
  /** Slow packets in the window it did not list (past its per-interval limit): a probe among them reads not-slow. */
  notKept: number;
  probes: ProbeAnswer[];
}

/** What a prober made of a peer's answers (serve/peer.ts asks). */
export interface PeerAnswer {
  url: string;
  state: 'answered' | 'no-answer' | 'refused' | 'not-jitterscope';
  /** The peer's host name, when it answered. */
  node: string | null;
  /** What went wrong, in one line (null when answered). */
  detail: string | null;
  probes: ProbeAnswer[];
}

/** A refusal the HTTP side turns into its status: 403 for another source's probes. */
export class ForbiddenQuery extends Error {}

const normal = (a: string) => (a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a).toLowerCase();

/**
 * The query in /explain's parameters (proto=icmp&id=N&seq=1,2,3[&source=A];
 * proto=udp&id=PORT&seq=SPORT,... for the mesh's UDP probes to PORT),
 * asked from `caller`'s address. A query about another source is refused: a
 * node tells each caller about its own probes only.
 */
export function parseExplainQuery(params: URLSearchParams, caller: string): ExplainQuery {
  const proto = params.get('proto') ?? 'icmp';
  if (proto !== 'icmp' && proto !== 'udp') throw new UsageError(`proto: '${proto}' is not one this node explains (icmp, udp)`);
  const idText = params.get('id') ?? '';
  if (!/^\d{1,5}$/.test(idText) || Number(idText) > 65535) throw new UsageError(`id: '${idText}' is not an echo id (0-65535)`);
  const seqText = params.get('seq') ?? '';
  const seqs = seqText.split(',').filter(Boolean);
  if (!seqs.length || seqs.some((s) => !/^\d{1,5}$/.test(s) || Number(s) > 65535))
    throw new UsageError(`seq: '${seqText.slice(0, 40)}' is not a list of echo sequence numbers (e.g. seq=3,17,42)`);
  if (seqs.length > EXPLAIN_MAX_SEQS) throw new UsageError(`seq: ${seqs.length} sequence numbers; ask about at most ${EXPLAIN_MAX_SEQS} at a time`);
  const source = normal(caller);
  const asked = params.get('source');
  if (asked !== null && normal(asked) !== source)
    throw new ForbiddenQuery(`source: this node answers only about the caller's own probes (${source}), not ${asked}`);
  return { source, proto, id: Number(idText), seqs: [...new Set(seqs.map(Number))] };
}

const ECHO_REQUEST = new Set([8, 128]);

const unheld = (seq: number, state: ProbeAnswer['state']): ProbeAnswer => ({
  seq,
  state,
  cpu: null,
  waitMs: null,
  bound: false,
  culprit: null,
  kind: null,
  culpritCpu: null,
  pausedMs: 0,
});

/**
 * A UDP probe the responder answered right after its own slow wake-up on that CPU: held for that wait, by what held the CPU (the
 * wake-up's attribution). Else right after a stall on its CPU ended: held by that stall (its wait there, at most the stall's length).
 * Else, after a wake-up nothing explains: held, unexplained. Else seen (answered) or not seen (the responder's record reaches back far
 * enough and has no answer to it).
 */
function responderAnswer(source: string, sport: number, r: Responder, stalls: StallRow[], wakes: WakeupRow[]): ProbeAnswer {
  const answer = r.answeredAt(source, sport);
  // an answer older than the record asked about was to an earlier probe from the same port
  const at = answer && answer.atNs >= r.nowNs - RESPONDER_RECORD_NS ? answer : undefined;
  if (!at) return unheld(sport, r.keptSinceNs <= r.nowNs - RESPONDER_RECORD_NS ? 'not-seen' : 'not-slow');
  // the responder's own wake-up, timed: it ran on that CPU just before it answered (the newest such)
  const woke = wakes
    .filter((x) => {
      const end = x.startNs + x.durationNs;
      return x.cpu === at.cpu && end <= at.atNs && end >= at.atNs - RESPONDER_AFTER_STALL_NS;
    })
    .reduce<WakeupRow | undefined>((a, x) => (!a || x.startNs > a.startNs ? x : a), undefined);
  if (woke?.attribution) return heldAt(sport, at.cpu, woke.durationNs, false, woke.attribution, wakeupWindow(woke), stalls);
  const ended = stalls.filter((s) => {
    const end = s.startNs + s.durationNs;
    return s.cpu === at.cpu && s.kind !== 'self' && end <= at.atNs && end >= at.atNs - RESPONDER_AFTER_STALL_NS;
  });
  // a callback is named over the softirq it ran in (both end together)
  const best = ended.find((s) => s.kind !== 'softirq') ?? ended[0];
  // a wake-up nothing explains: held there, by what is not known
  if (!best) return woke ? heldAt(sport, at.cpu, woke.durationNs, false, null, wakeupWindow(woke), stalls) : unheld(sport, 'seen');
  return heldAt(sport, at.cpu, best.durationNs, true, best, { cpus: [at.cpu], from: best.startNs, to: at.atNs }, stalls);
}

/** A probe held at the responder on `cpu`: its wait (an upper bound or not), what held the CPU, and how much of `window` host pauses covered. */
function heldAt(seq: number, cpu: number, waitNs: number, bound: boolean, by: CulpritId | null, window: WaitWindow, stalls: StallRow[]): ProbeAnswer {
  return {
    seq,
    state: 'slow',
    cpu,
    waitMs: waitNs / 1e6,
    bound,
    culprit: by?.culprit ?? null,
    kind: by?.kind ?? null,
    culpritCpu: by?.cpu ?? null,
    pausedMs: pausedNs(window, stalls) / 1e6,
  };
}

/**
 * When this node's mesh responder answered a UDP probe (from `source`, port
 * `sport`), on this node's clock, and on which CPU: a probe whose packet was
 * not held may have waited for the responder, woken late behind a stall on
 * that CPU (same node, same clock: no clocks compared).
 */
export type AnsweredAt = (source: string, sport: number) => { atNs: number; cpu: number } | undefined;

/** A responder woken this soon after a stall on its CPU ended waited for it. */
const RESPONDER_AFTER_STALL_NS = 2e6;
/**
 * A UDP probe reads not-seen only when the responder's record of answers reaches back this far (probes are asked about seconds after they are sent);
 * an older answer from the same port was to another probe.
 */
const RESPONDER_RECORD_NS = 30e9;

/** This node's mesh responder: when it answered each probe, since when its record is whole, and now (its monotonic clock, ns). */
export interface Responder {
  answeredAt: AnsweredAt;
  keptSinceNs: number;
  nowNs: number;
  /** Its UDP port, and this node's own threads' attributed slow wake-ups (the responder's among them: on a socket of that port). */
  port?: number;
  ownWakeups?: WakeupRow[];
}

/** The peer's answer: each asked probe as its trace saw it (the slow packets of the window, attributed; `stalls` are its stall rows, host pauses among them). */
export function answerQuery(
  q: ExplainQuery,
  packets: { slow: SlowPacket[]; slowThresholdNs: number; slowNotKept: number },
  node: string,
  windowMs: number,
  stalls: StallRow[],
  responder?: Responder,
): ExplainAnswer {
  const slow = packets.slow;
  const mine = new Map<number, SlowPacket>();
  // the responder's own slow wake-ups (on a socket of its port), once for every probe asked about
  const responderWakes = (responder?.ownWakeups ?? []).filter((x) => x.kind !== 'stolen' && x.flow?.proto === 'udp' && x.flow.dport === responder!.port);
  // an echo request's sequence number, or (udp) a datagram's source port: the probe's identity
  const probeOf = (p: SlowPacket): number | null => {
    if (normal(p.saddr) !== q.source) return null;
    if (q.proto === 'udp') return p.proto === 'udp' && p.dport === q.id ? p.sport : null;
    return (p.proto === 'icmp' || p.proto === 'icmpv6') && p.type !== null && ECHO_REQUEST.has(p.type) && p.id === q.id ? p.seq : null;
  };
  for (const p of slow) {
    const seq = probeOf(p);
    if (seq === null) continue;
    const had = mine.get(seq);
    if (!had || (p.waitNs ?? 0) > (had.waitNs ?? 0)) mine.set(seq, p);
  }
  return {
    schema: EXPLAIN_SCHEMA_ID,
    node,
    windowMs,
    slowThresholdMs: packets.slowThresholdNs / 1e6,
    notKept: packets.slowNotKept,
    probes: q.seqs.map((seq) => {
      const p = mine.get(seq);
      if (!p) return q.proto === 'udp' && responder ? responderAnswer(q.source, seq, responder, stalls, responderWakes) : unheld(seq, 'not-slow');
      const a = p.attribution;
      return {
        seq,
        state: 'slow',
        cpu: p.cpu,
        waitMs: p.waitNs === null ? null : p.waitNs / 1e6,
        bound: p.path === 'late-run' || p.path === 'napi-bound',
        culprit: a?.culprit ?? null,
        kind: a?.kind ?? null,
        culpritCpu: a?.cpu ?? null,
        pausedMs: p.waitNs === null ? 0 : pausedNs(packetWindow(p), stalls) / 1e6,
      };
    }),
  };
}

const STATES = new Set<unknown>(['slow', 'not-slow', 'seen', 'not-seen']);

/** The prober's check of an answer: a jitterscope answer about the probes asked, or why not. */
export function readAnswer(body: unknown, seqs: number[]): ExplainAnswer {
  const a = body as Partial<ExplainAnswer> | null;
  if (!a || typeof a !== 'object' || a.schema !== EXPLAIN_SCHEMA_ID || !Array.isArray(a.probes) || typeof a.node !== 'string')
    throw new Error(`not a ${EXPLAIN_SCHEMA_ID} answer`);
  const asked = new Set(seqs);
  const numberOrNull = (v: unknown) => v === null || (typeof v === 'number' && Number.isFinite(v));
  const stringOrNull = (v: unknown) => v === null || typeof v === 'string';
  for (const p of a.probes)
    if (
      !p ||
      typeof p.seq !== 'number' ||
      !asked.has(p.seq) ||
      !STATES.has(p.state) ||
      !numberOrNull(p.cpu) ||
      !numberOrNull(p.waitMs) ||
      typeof p.bound !== 'boolean' ||
      !stringOrNull(p.culprit) ||
      !stringOrNull(p.kind) ||
      !numberOrNull(p.culpritCpu) ||
      !(p.pausedMs === undefined || (typeof p.pausedMs === 'number' && p.pausedMs >= 0))
    )
      throw new Error(`not a ${EXPLAIN_SCHEMA_ID} answer: a probe row is malformed or was not asked about`);
  return a as ExplainAnswer;
}

/** One line for a probe the peer answered about. */
export function peerText(p: ProbeAnswer): string {
  if (p.state === 'not-slow') return 'not seen held there';
  if (p.state === 'seen') return 'seen there, not held';
  if (p.state === 'not-seen') return 'not seen there (it never reached the responder)';
  const wait = p.waitMs === null ? '' : ` ${p.bound ? '<= ' : ''}${p.waitMs.toFixed(1)} ms`;
  const paused = p.pausedMs ? ` (a host pause there covered ${p.pausedMs.toFixed(1)} ms of it)` : '';
  return `waited${wait} on CPU ${p.cpu}${p.culprit ? `: ${p.culprit} on CPU ${p.culpritCpu}` : ', no single cause'}${paused}`;
}

/** What the peer's answers add up to: how many slow replies waited there, and what held most of them. */
export function peerSummary(p: PeerAnswer, slowReplies: number): string {
  if (p.state !== 'answered') return `${p.url}: ${p.state} (${p.detail})`;
  if (!p.probes.length) return `${p.url}: ${p.detail ?? 'nothing to ask about'}`;
  const held = p.probes.filter((x) => x.state === 'slow');
  const by = new Map<string, number>();
  for (const x of held) if (x.culprit) by.set(`${x.culprit} on CPU ${x.culpritCpu}`, (by.get(`${x.culprit} on CPU ${x.culpritCpu}`) ?? 0) + 1);
  const top = [...by].sort((a, b) => b[1] - a[1])[0];
  return (
    `at the peer (${p.node ?? '?'}, ${p.url}): ${held.length} of ${slowReplies} slow replies waited there` +
    (top ? `; ${top[0]} held ${top[1]} of them` : '') +
    (held.length < slowReplies
      ? `; ${slowReplies - held.length} were not seen held there (delayed here or between the nodes, or shorter than its threshold)`
      : '')
  );
}
