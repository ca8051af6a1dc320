// Shared pieces of the kernel tests: running the CLI, listing our BPF programs,
// network namespaces, and skipping (with the reason printed) when the machine
// cannot run kernel tests.
import { spawn, spawnSync, SpawnOptions, ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
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

/**
 * The one way a test skips: with the reason on stderr and in the test's
 * result (npm test lists every skip at the end). Returns true so a test can
 * `if (skipIf(t, why)) return;`; a null reason does nothing and returns false.
 */
export function skipIf(t: { skip: (msg?: string) => void }, why: string | null): boolean {
  if (!why) return false;
  process.stderr.write(`SKIP: ${why}\n`);
  t.skip(why);
  return true;
}

/** Skips the current test with the reason on stderr, or returns false when it may run. */
export function skipUnlessKernel(t: { skip: (msg?: string) => void }): boolean {
  return skipIf(t, kernelSkipReason());
}

/** Skips (with the reason printed) on a one-CPU machine: the lab stall runs on CPU 1. */
export function needsTwoCpus(t: { skip: (msg?: string) => void }): boolean {
  return skipIf(t, native().numPossibleCpus >= 2 ? null : 'needs CPU 1');
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
  return progs.filter((p) => p.name && /^js[rfk]?_/.test(p.name)).map((p) => ({ id: p.id, name: p.name! }));
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
 * JITTERSCOPE_TEST_PAUSES=MS[/EVERY_MS] makes every lab stall the tests start
 * also hold interrupts off on its CPU for MS every EVERY_MS (default 700):
 * a machine whose host pauses it, on demand, to show the timing tests still
 * pass there and can still fail.
 */
export function injectedPauses(): { pauseMs: number; pausePeriodMs: number } | null {
  const v = process.env.JITTERSCOPE_TEST_PAUSES;
  if (!v) return null;
  const [ms, every] = v.split('/').map(Number);
  if (!(ms > 0)) throw new Error(`JITTERSCOPE_TEST_PAUSES='${v}': give MS or MS/EVERY_MS`);
  return { pauseMs: ms, pausePeriodMs: every || 700 };
}

/**
 * `jitterscope lab` in namespace b: the stall on CPU 1, vb's RPS steered to it
 * (and restored by lab on exit). Resolves once it is stalling.
 */
export async function startLab(net: NetnsPair) {
  const pause = injectedPauses();
  const pauseArgs = pause ? ['--pause-ms', String(pause.pauseMs), '--pause-every-ms', String(pause.pausePeriodMs)] : [];
  const lab = spawn(
    'ip',
    net.exec(net.b, [process.execPath, CLI, 'lab', '--cpu', '1', '--stall-ms', '15', '--period-ms', '200', '--rps', 'vb', ...pauseArgs]),
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
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

/** Reads a report a command wrote and checks it against the project's schema: whatever the host did, a report must be valid. */
export function readReport<T = any>(file: string): T {
  const r = readJson<T>(file);
  const validate = validator();
  assert.ok(validate(r), `${file} fails schema/report.v2.json: ${JSON.stringify(validate.errors?.slice(0, 3))}`);
  return r;
}

/** The report validator, compiled from schema/report.v2.json with ajv (strict); `at` (a JSON pointer, e.g. /definitions/ping) validates that part alone. */
export function validator(schema = 'report.v2.json', at?: string): ((data: unknown) => boolean) & { errors?: unknown[] | null } {
  const ajv = new Ajv({ allErrors: true, strict: true });
  addFormats(ajv);
  const json = JSON.parse(fs.readFileSync(path.join(ROOT, 'schema', schema), 'utf8'));
  if (!at) return ajv.compile(json) as any;
  ajv.addSchema({ ...json, $id: 'whole' });
  return ajv.compile({ $ref: `whole#${at}` }) as any;
}

/** A peer that times wake-ups too: libbpf-tools' runqslower (Debian's libbpf-tools), or null where it is missing. */
export const RUNQSLOWER = ['/usr/sbin/runqslower', '/usr/bin/runqslower'].find((f) => fs.existsSync(f)) ?? null;

/** runqslower's lines: wall-clock second (HH:MM:SS, local, as it prints it) and the wait in µs. */
export function parseRunqslower(text: string): { time: string; latUs: number }[] {
  return text
    .split('\n')
    .map((l) => /^(\d\d:\d\d:\d\d)\s+\S.*?\s+(\d+)\s+(\d+)\s*$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ time: m[1], latUs: Number(m[3]) }));
}
