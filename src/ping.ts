// `jitterscope ping`: runs the system ping (iputils, with -D timestamps and a
// chosen identifier) while tracing, then ties every reply to its ICMP events
// and to what its CPU was running, and sums it up in a verdict.
import { spawn } from 'node:child_process';
import { adviceFor } from './advice';
import { attributeReplies, Culprit, leadingCulprit, PingReply, ReplyRow } from './attribute';
import { interfaceByIndex, RpsQueue, rpsQueues } from './net';
import { fmtNs, Report } from './report';

export interface PingRun {
  replies: PingReply[];
  sent: number;
  exitCode: number | null;
  stderr: string;
}

export interface PingParams {
  address: string;
  id: number;
  count: number;
  intervalMs: number;
  sizeBytes: number;
  iface?: string;
  timeoutS: number;
}

const REPLY = /^\[(\d+\.\d+)\] \d+ bytes from [^:]+: icmp_seq=(\d+) .*time=([\d.]+) ms(.*)$/;
const SENT = /^(\d+) packets transmitted/;

/** Parses iputils ping -D output. Duplicates are ignored. */
export function parsePingOutput(text: string): { replies: PingReply[]; sent: number | null } {
  const replies: PingReply[] = [];
  const seen = new Set<number>();
  let sent: number | null = null;
  for (const line of text.split('\n')) {
    const m = REPLY.exec(line.trim());
    if (m && !m[4].includes('DUP')) {
      const seq = Number(m[2]);
      if (seen.has(seq)) continue;
      seen.add(seq);
      replies.push({ seq, rttMs: Number(m[3]), wallMs: Number(m[1]) * 1000 });
      continue;
    }
    const s = SENT.exec(line.trim());
    if (s) sent = Number(s[1]);
  }
  return { replies, sent };
}

export function pingArgs(p: PingParams): string[] {
  const args = ['-D', '-n', '-O', '-e', String(p.id), '-c', String(p.count), '-i', (p.intervalMs / 1000).toFixed(3)];
  args.push('-s', String(p.sizeBytes), '-W', String(p.timeoutS));
  if (p.iface) args.push('-I', p.iface);
  args.push(p.address);
  return args;
}

export function runPing(p: PingParams, signal: AbortSignal): Promise<PingRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('ping', pingArgs(p), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const onAbort = () => child.kill('SIGINT'); // ping prints its statistics on SIGINT
    signal.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e) => reject(new Error(`cannot run ping (${e.message}); install iputils-ping`)));
    child.on('close', (code) => {
      signal.removeEventListener('abort', onAbort);
      const parsed = parsePingOutput(out);
      const sent = parsed.sent ?? Math.max(0, ...parsed.replies.map((r) => r.seq));
      resolve({ replies: parsed.replies, sent, exitCode: code, stderr: err.trim() });
    });
  });
}

export interface RpsFinding {
  interface: string;
  queues: RpsQueue[];
  /** Whether some receive queue steers to the culprit's CPU (null without a culprit). */
  steersToCulpritCpu: boolean | null;
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

export interface PingSection {
  target: string;
  address: string;
  id: number;
  count: number;
  intervalMs: number;
  sizeBytes: number;
  interface: string | null;
  replies: ReplyRow[];
  verdict: PingVerdict;
}

export function pingSection(report: Report, target: string, p: PingParams, run: PingRun, slowMs: number): PingSection {
  const rows = attributeReplies(run.sent, run.replies, report.icmp.packets, report.stalls.rows, { id: p.id, slowMs });
  const culprit = leadingCulprit(rows, report.stalls.rows);
  const slow = rows.filter((r) => r.slow);
  const attributed = slow.filter((r) => r.attribution).length;

  // the interface the replies came in on, in this network namespace
  const replyIf = report.icmp.packets.find((x) => x.id === p.id && x.type === 0)?.ifindex;
  const ifname = p.iface ?? (replyIf !== undefined ? interfaceByIndex(replyIf) : null);
  let rps: RpsFinding | null = null;
  if (ifname) {
    const queues = rpsQueues(ifname);
    rps = {
      interface: ifname,
      queues,
      steersToCulpritCpu: culprit ? queues.some((q) => q.cpus.includes(culprit.cpu)) : null,
    };
  }
  const advice = culprit ? adviceFor(culprit.culprit, culprit.cpu, culprit.runs.maxMs) : [];
  const v: PingVerdict = {
    sent: run.sent,
    received: run.replies.length,
    lost: run.sent - run.replies.length,
    slowMs,
    slow: slow.length,
    slowShare: run.replies.length ? slow.length / run.replies.length : 0,
    attributed,
    culprit,
    rps,
    advice,
    text: '',
  };
  v.text = verdictText(target, v);
  return {
    target,
    address: p.address,
    id: p.id,
    count: p.count,
    intervalMs: p.intervalMs,
    sizeBytes: p.sizeBytes,
    interface: p.iface ?? null,
    replies: rows,
    verdict: v,
  };
}

const pct = (x: number) => `${Math.round(x * 100)}%`;

export function verdictText(target: string, v: PingVerdict): string {
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

export function slowRepliesText(s: PingSection, limit = 20): string {
  const slow = s.replies.filter((r) => r.slow).slice(0, limit);
  if (!slow.length) return '';
  const lines = ['slow replies:', '  seq     rtt  req cpu  reply cpu    wait  culprit'];
  for (const r of slow) {
    const a = r.attribution;
    lines.push(
      `  ${String(r.seq).padStart(3)}  ${fmtNs((r.rttMs ?? 0) * 1e6).padStart(6)}  ${String(r.requestCpu ?? '-').padStart(7)}  ${String(r.replyCpu ?? '-').padStart(9)}  ${(r.waitMs === null ? '-' : fmtNs(r.waitMs * 1e6)).padStart(6)}  ${a ? `${a.culprit} on CPU ${a.cpu}, overlap ${a.overlapMs.toFixed(1)} ms` : '-'}`,
    );
  }
  return lines.join('\n');
}
