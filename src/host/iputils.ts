// Runs the system ping (iputils, with -D timestamps and a chosen identifier)
// for `jitterscope ping` (a counted run) and serve's mesh (one that runs
// until stopped, read line by line), and parses what it prints.
import { ChildProcess, spawn } from 'node:child_process';
import { restorePriority } from './priority';

/** One echo reply as ping printed it. */
export interface PingReply {
  seq: number;
  rttMs: number;
  /** Wall-clock receive time from ping -D (ms since the epoch). */
  wallMs: number;
}

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
/** -O: a request that had no reply before the next was sent. */
const NO_ANSWER = /^\[(\d+\.\d+)\] no answer yet for icmp_seq=(\d+)$/;
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
    restorePriority(child.pid);
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

/** One line of ping -D -O output: a reply (duplicates are null), a request still unanswered, or nothing to read. */
export function pingLine(line: string): { reply: PingReply } | { noAnswer: number } | null {
  const t = line.trim();
  const m = REPLY.exec(t);
  if (m) return m[4].includes('DUP') ? null : { reply: { seq: Number(m[2]), rttMs: Number(m[3]), wallMs: Number(m[1]) * 1000 } };
  const n = NO_ANSWER.exec(t);
  return n ? { noAnswer: Number(n[2]) } : null;
}

export interface PingStreamParams {
  address: string;
  family: 4 | 6;
  id: number;
  intervalMs: number;
  sizeBytes: number;
}

/**
 * A ping that runs until stop(), each line handed on as it comes: a reply, or
 * (-O) a request that had none before the next was sent. `onExit` hears of a
 * ping that ended by itself (its first line of stderr).
 */
export function pingStream(
  p: PingStreamParams,
  on: { reply: (r: PingReply) => void; noAnswer: (seq: number) => void; exit: (why: string) => void },
): { stop(): void } {
  const args = [
    p.family === 6 ? '-6' : '-4',
    '-D',
    '-n',
    '-O',
    '-e',
    String(p.id),
    '-i',
    (p.intervalMs / 1000).toFixed(3),
    '-s',
    String(p.sizeBytes),
    '-W',
    '1',
    p.address,
  ];
  const child: ChildProcess = spawn('ping', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  restorePriority(child.pid);
  let stopped = false;
  let rest = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    const lines = (rest + d.toString('latin1')).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) {
      const got = pingLine(line);
      if (got && 'reply' in got) on.reply(got.reply);
      else if (got) on.noAnswer(got.noAnswer);
    }
  });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString('latin1')).length > 4096 && (err = err.slice(0, 4096)));
  child.on('error', (e) => !stopped && on.exit(`cannot run ping (${e.message}); install iputils-ping`));
  child.on('close', (code) => !stopped && on.exit(`ping exited (${code}): ${err.trim().split('\n')[0] || 'no output'}`));
  return {
    stop() {
      stopped = true;
      child.kill('SIGINT');
    },
  };
}
