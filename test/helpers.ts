// Shared pieces of the kernel tests: running the CLI, listing our BPF programs,
// network namespaces, and skipping (with the reason printed) when the machine
// cannot run kernel tests.
import { spawn, spawnSync, SpawnOptions, ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { native } from '../src/kernel/addon';

export const ROOT = path.resolve(__dirname, '..', '..');
export const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');

/** Why kernel tests cannot run here, or null. CI runs as root, where this is null. */
export function kernelSkipReason(): string | null {
  if (process.getuid && process.getuid() !== 0) return 'kernel tests need root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN)';
  if (!fs.existsSync('/sys/kernel/btf/vmlinux')) return 'kernel has no BTF (/sys/kernel/btf/vmlinux)';
  return null;
}

/** Skips the current test with the reason on stderr, or returns false when it may run. */
export function skipUnlessKernel(t: { skip: (msg?: string) => void }): boolean {
  const why = kernelSkipReason();
  if (!why) return false;
  process.stderr.write(`SKIP: ${why}\n`);
  t.skip(why);
  return true;
}

/** Skips (with the reason printed) on a one-CPU machine: the lab stall runs on CPU 1. */
export function needsTwoCpus(t: { skip: (msg?: string) => void }): boolean {
  if (native().numPossibleCpus >= 2) return false;
  process.stderr.write('SKIP: needs CPU 1\n');
  t.skip('needs CPU 1');
  return true;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], opts: SpawnOptions & { prefix?: string[] } = {}): Promise<CliResult> {
  const cmd = opts.prefix ? [...opts.prefix, process.execPath, CLI, ...args] : [process.execPath, CLI, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Starts the CLI; `ready` resolves once its stderr shows `marker` (e.g. "tracing for"), false if it never does. */
export function startCli(
  args: string[],
  marker: RegExp,
  opts: { prefix?: string[]; timeoutMs?: number } = {},
): { ready: Promise<boolean>; done: Promise<CliResult>; child: ChildProcess } {
  const cmd = [...(opts.prefix ?? []), process.execPath, CLI, ...args];
  const child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const timeoutMs = opts.timeoutMs ?? 15_000;
  let stdout = '';
  let stderr = '';
  let seen: (v: boolean) => void = () => undefined;
  const ready = new Promise<boolean>((r) => (seen = r));
  const timer = setTimeout(() => seen(false), timeoutMs);
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => {
    stderr += d;
    if (marker.test(stderr)) seen(true);
  });
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      seen(false);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { ready, done, child };
}

/** Loaded BPF programs whose names are the tracer's (js_*, jsr_*, jsf_*, jsk_*). */
export function tracerPrograms(): { id: number; name: string }[] {
  const r = spawnSync('bpftool', ['prog', 'show', '-j'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bpftool prog show failed: ${r.stderr}`);
  const progs = JSON.parse(r.stdout || '[]') as { id: number; name?: string }[];
  return progs
    .filter((p) => p.name && /^js[rfk]?_/.test(p.name))
    .map((p) => ({ id: p.id, name: p.name! }));
}

export async function waitFor(cond: () => boolean, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return cond();
}

export function sh(cmd: string): string {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd}: exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/**
 * Two namespaces joined by a veth pair: 198.18.0.1 (a) <-> 198.18.0.2 (b), RFC 2544
 * test range, and fd00:5e::1 <-> fd00:5e::2 (unique local, no duplicate detection).
 */
export class NetnsPair {
  readonly a = `jsa${process.pid}`;
  readonly b = `jsb${process.pid}`;
  readonly addrA = '198.18.0.1';
  readonly addrB = '198.18.0.2';
  readonly addr6A = 'fd00:5e::1';
  readonly addr6B = 'fd00:5e::2';

  constructor() {
    this.destroy();
    sh(`ip netns add ${this.a} && ip netns add ${this.b}`);
    sh(`ip link add va type veth peer name vb && ip link set va netns ${this.a} && ip link set vb netns ${this.b}`);
    sh(`ip -n ${this.a} addr add ${this.addrA}/24 dev va && ip -n ${this.a} link set va up && ip -n ${this.a} link set lo up`);
    sh(`ip -n ${this.b} addr add ${this.addrB}/24 dev vb && ip -n ${this.b} link set vb up && ip -n ${this.b} link set lo up`);
    sh(`ip -n ${this.a} addr add ${this.addr6A}/64 dev va nodad && ip -n ${this.b} addr add ${this.addr6B}/64 dev vb nodad`);
  }

  /** The arguments to `ip` that run `cmd` inside namespace `ns`. */
  exec(ns: string, cmd: string[]): string[] {
    return ['netns', 'exec', ns, ...cmd];
  }

  destroy(): void {
    spawnSync('ip', ['netns', 'del', this.a]);
    spawnSync('ip', ['netns', 'del', this.b]);
  }
}

/**
 * `jitterscope lab` in namespace b: the stall on CPU 1, vb's RPS steered to it
 * (and restored by lab on exit). Resolves once it is stalling.
 */
export async function startLab(net: NetnsPair) {
  const lab = spawn('ip', net.exec(net.b, [process.execPath, CLI, 'lab', '--cpu', '1', '--stall-ms', '15', '--period-ms', '200', '--rps', 'vb']), {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  lab.stderr!.on('data', (d) => (err += d));
  const closed = new Promise<number | null>((r) => lab.on('close', r));
  if (!(await waitFor(() => err.includes('lab: stalling'), 10_000))) throw new Error(`lab did not start: ${err}`);
  return {
    /** SIGINT, then its exit status must be 0. */
    stop: async () => {
      lab.kill('SIGINT');
      const code = await closed;
      if (code !== 0) throw new Error(`lab exited ${code}: ${err}`);
    },
    kill: () => lab.kill('SIGKILL'),
    stderr: () => err,
  };
}

export function tmpFile(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jitterscope-test-'));
  return path.join(dir, name);
}

export function readJson<T = any>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}

/** The report validator, compiled from schema/report.v2.json with ajv (strict). */
export function validator(schema = 'report.v2.json'): ((data: unknown) => boolean) & { errors?: unknown[] | null } {
  const ajv = new Ajv({ allErrors: true, strict: true });
  addFormats(ajv);
  return ajv.compile(JSON.parse(fs.readFileSync(path.join(ROOT, 'schema', schema), 'utf8'))) as any;
}

/**
 * A watcher of host preemption, in its own process so a test blocked in
 * spawnSync does not stop it. Two witnesses, because the hypervisor does not
 * account every preemption as steal:
 *  - steal time (/proc/stat, 10 ms ticks): every 50 ms, how much each CPU lost
 *    since the last look; the largest burst is kept;
 *  - wake-up lateness: the watcher runs at real-time priority pinned to one CPU
 *    and wakes every 5 ms; how late a wake-up comes is how long nothing in the
 *    guest could run there (a softirq or the host holding the CPU).
 */
const STEAL_WATCHER = `
const fs = require('fs');
const read = () => fs.readFileSync('/proc/stat', 'utf8').split('\\n').filter((l) => /^cpu\\d+ /.test(l)).map((l) => Number(l.trim().split(/\\s+/)[8]) * 10);
let last = read(), burst = 0, total = 0, late = 0, prev = performance.now();
setInterval(() => { const now = read(); now.forEach((v, i) => { const d = v - (last[i] || 0); total += d; if (d > burst) burst = d; }); last = now; }, 50);
setInterval(() => { const now = performance.now(); late = Math.max(late, now - prev - 5); prev = now; }, 5);
process.on('SIGTERM', () => { process.stdout.write(JSON.stringify({ burst, total, late: Math.round(late) })); process.exit(0); });
`;

/** A preemption this long (ms, on one CPU, within 50 ms) distorts what a timing test measures. */
const STEAL_BURST_MS = 30;
/** A wake-up this late on a CPU: well beyond the 15 ms lab stall the timing tests run. */
const LATE_WAKEUP_MS = 40;

type Witness = { burst: number; total: number; late: number };

/** Whether watchers can run pinned at real-time priority (chrt and taskset work): learnt once. */
let pinnable: boolean | undefined;

function startWatcher(cpu: number | null) {
  const argv = [process.execPath, '-e', STEAL_WATCHER];
  // real-time priority and a pinned CPU where possible; plain otherwise
  const cmd = cpu === null ? argv : ['chrt', '-f', '10', 'taskset', '-c', String(cpu), ...argv];
  const watcher = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
  let said = '';
  watcher.stdout!.on('data', (d) => (said += d));
  watcher.on('error', () => {});
  const closed = new Promise((r) => watcher.on('close', r));
  return async (): Promise<Witness> => {
    watcher.kill('SIGTERM');
    await closed;
    try {
      return JSON.parse(said) as Witness;
    } catch {
      return { burst: 0, total: 0, late: 0 };
    }
  };
}

/**
 * Runs a timing-sensitive test body. If it fails and, meanwhile, the host
 * preempted one of this VM's CPUs for STEAL_BURST_MS or more at once (as steal
 * time), or a real-time wake-up on some CPU came LATE_WAKEUP_MS late, the test
 * is skipped with the figures printed: such a preemption shows inside the VM as
 * a callback or a wait that long, which no tracer in the guest can tell apart.
 * Without either, a failure fails.
 */
export async function unlessStolen(t: { skip: (m?: string) => void }, body: () => Promise<void>): Promise<void> {
  pinnable ??= spawnSync('chrt', ['-f', '10', 'true']).status === 0 && spawnSync('taskset', ['-c', '0', 'true']).status === 0;
  const cpus = pinnable ? [...Array(Math.min(os.cpus().length, 8)).keys()] : [null];
  const stops = cpus.map(startWatcher);
  const stop = async () => {
    const seen = await Promise.all(stops.map((s) => s()));
    return {
      burst: Math.max(...seen.map((w) => w.burst)),
      total: Math.max(...seen.map((w) => w.total)),
      late: Math.max(...seen.map((w) => w.late)),
    };
  };
  try {
    await body();
  } catch (e) {
    const w = await stop();
    if (w.burst < STEAL_BURST_MS && w.late < LATE_WAKEUP_MS) throw e;
    const why =
      `the host preempted a CPU of this VM during the test (longest steal burst ${w.burst} ms, ${w.total} ms stolen in all; ` +
      `latest real-time wake-up ${w.late} ms late); it failed with: ${(e as Error).message.split('\n')[0]}`;
    process.stderr.write(`SKIP: ${why}\n`);
    t.skip(why);
    return;
  }
  await stop();
}
