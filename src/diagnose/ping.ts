// The ping verdict: `jitterscope ping`'s replies, each tied to what held its
// CPU(s), summed up for an incident ticket. Pure logic: the command gathers
// the host's facts (RPS masks, interface names, IPVS switch) and passes them.
import { HostFacts } from '../base/host-facts';
import { pct } from '../base/format';
import { Culprit, leadingCulprit, PauseFinding, pauseFinding, ReplyRow, SelfFinding, selfFinding, StallRow } from './attribute';
import { pausesLine, RpsFinding, rpsFinding, rpsLine, selfLine, verdictAdvice } from './verdict';

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
  lines.push(
    `jitterscope ping ${target}: ${v.received} of ${v.sent} replies, ${v.lost} lost; ${v.slow} slow (>= ${v.slowMs} ms, ${pct(v.slowShare)}).`,
  );
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
  const pauses = pauseFinding(slowRows.map((r) => r.attribution), stalls);
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
    self: selfFinding(slowRows.map((r) => r.attribution), stalls),
    advice: verdictAdvice(culprit && { ...culprit, count: culprit.replies }, pauses, { ipvsSwitch: facts.ipvsSwitch }),
  });
}
