// Verdicts: the culprit behind the slow packets, the RPS masks that steer
// traffic onto its CPU, and what to do — as data and as the text people read.
import { pct } from '../base/format';
import { RpsQueue, rpsQueues } from '../host/net';
import { Culprit } from './attribute';

export interface RpsFinding {
  interface: string;
  queues: RpsQueue[];
  /** Whether some receive queue steers to the culprit's CPU (null without a culprit). */
  steersToCulpritCpu: boolean | null;
}

/** The RPS masks of `ifname` in this network namespace, held against the culprit's CPU. */
export function rpsFinding(ifname: string, culprit: Culprit | null): RpsFinding {
  const queues = rpsQueues(ifname);
  return { interface: ifname, queues, steersToCulpritCpu: culprit ? queues.some((q) => q.cpus.includes(culprit.cpu)) : null };
}

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
      `No culprit found: none of the ${v.slow} slow replies overlapped a long softirq or timer callback on the CPUs that handled them; the delay is elsewhere (sender, network, or the remote host).`,
    );
  else {
    const c = v.culprit;
    lines.push(
      `Culprit: ${c.culprit} on CPU ${c.cpu} (${c.kind}) delayed ${c.replies} of ${v.slow} slow replies (${pct(c.share)}); ` +
        `its runs: ${c.runs.count}, p50 ${c.runs.p50Ms.toFixed(1)} ms, max ${c.runs.maxMs.toFixed(1)} ms.`,
    );
    if (v.attributed > c.replies) lines.push(`Other culprits explain ${v.attributed - c.replies} more slow replies (see the report).`);
  }
  if (v.rps) {
    const masks = v.rps.queues.map((q) => `${q.queue}=${q.cpus.length ? 'CPU ' + q.cpus.join(',') : 'off'}`).join(' ');
    const tail =
      v.rps.steersToCulpritCpu === null
        ? ''
        : v.rps.steersToCulpritCpu
          ? ` — steers received packets to CPU ${v.culprit!.cpu}, the culprit's CPU.`
          : ` — does not steer to CPU ${v.culprit!.cpu}.`;
    lines.push(`RPS on ${v.rps.interface}: ${masks || 'no receive queues'}${tail}`);
  }
  for (const a of v.advice) lines.push(`Advice: ${a}`);
  return lines.join('\n');
}
