// Runs the system ping (iputils, with -D timestamps and a chosen identifier)
// for `jitterscope ping`, and parses what it prints.
import { spawn } from 'node:child_process';
import { restoreChildPriority } from '../host/priority';
import { PingReply } from '../diagnose/ping';

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
  family: 4 | 6;
  timeoutS: number;
}

const REPLY = /^\[(\d+\.\d+)\] \d+ bytes from \S+?: icmp_seq=(\d+) .*time=([\d.]+) ms(.*)$/;
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
  const args = [p.family === 6 ? '-6' : '-4', '-D', '-n', '-O', '-e', String(p.id), '-c', String(p.count), '-i', (p.intervalMs / 1000).toFixed(3)];
  args.push('-s', String(p.sizeBytes), '-W', String(p.timeoutS));
  if (p.iface) args.push('-I', p.iface);
  args.push(p.address);
  return args;
}

export function runPing(p: PingParams, signal: AbortSignal): Promise<PingRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('ping', pingArgs(p), { stdio: ['ignore', 'pipe', 'pipe'] });
    restoreChildPriority(child.pid);
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
