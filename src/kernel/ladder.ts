// The attach ladder: what this kernel offers (learned by loading and attaching
// trial programs from bpf/features.bpf.c, not guessed), and which hook each
// probe uses: fentry > kprobe > tracepoint.
import { BpfError, EnvironmentError } from '../base/errors';
import { effectiveCaps } from '../host/caps';
import { hasKernelBtf, lockdown } from '../host/kernel-info';
import { IpvsSymbols } from '../host/ipvs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { addonPath, elfBuildId } from './addon';
import { loadObject } from './loader';

export interface Trial {
  ok: boolean;
  error: string | null;
}

export interface Features {
  btf: boolean;
  fentry: Trial;
  kprobe: Trial;
  tp_btf: Trial;
  raw_tp: Trial;
  /** Classic tracepoints need tracefs mounted. */
  tracefs: string | null;
}

export const ATTACH_PREFS = ['auto', 'fentry', 'kprobe', 'tracepoint'] as const;
export type AttachPref = (typeof ATTACH_PREFS)[number];
export type HookMode = 'fentry' | 'kprobe' | 'tracepoint';
/** The rungs that hook the function itself rather than a tracepoint near it. */
export type DirectMode = 'fentry' | 'kprobe';

export function isDirect(mode: HookMode | null | undefined): mode is DirectMode {
  return mode === 'fentry' || mode === 'kprobe';
}

/** Loads (and attaches, where attaching is what fails) one trial program. */
function trial(program: string, attach: boolean): Trial {
  try {
    loadObject({ object: 'features', autoload: (p) => p === program, start: (o) => attach && o.attach(program) }).close();
    return { ok: true, error: null };
  } catch (e) {
    if (!(e instanceof BpfError)) throw e;
    return { ok: false, error: `${e.step.startsWith('attach') ? 'attach' : 'load'}: ${e.code}` };
  }
}

function tracefsMount(): string | null {
  for (const dir of ['/sys/kernel/tracing', '/sys/kernel/debug/tracing']) if (fs.existsSync(`${dir}/events/irq/softirq_entry/id`)) return dir;
  return null;
}

let cached: Features | undefined;

/**
 * What the trial programs found, kept for the rest of the boot: the same
 * kernel gives the same answers, and the trials cost ~17 ms of every start.
 * Keyed by boot id, kernel release and this build's addon; in /run (a
 * tmpfs: gone at reboot; JITTERSCOPE_FEATURE_CACHE moves it). Where it cannot be
 * written, every start probes.
 */
export const FEATURE_CACHE = process.env.JITTERSCOPE_FEATURE_CACHE || '/run/jitterscope/features.json';

/**
 * This boot, this kernel, this build (the addon that embeds the trial
 * programs), and what this process may do (its capabilities, the kernel's
 * lockdown): a run with fewer rights finds less, and must not speak for others.
 */
function cacheKey(): string | null {
  try {
    // the build id changes with anything linked in, the trial programs included (npm gives every file one mtime)
    const file = addonPath();
    const build = elfBuildId(file) ?? `${fs.statSync(file).size}:${fs.statSync(file).mtimeMs}`;
    // no securityfs (lockdown null): the same for every run on this boot
    return [fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(), os.release(), build, effectiveCaps().toString(16), lockdown() ?? ''].join(' ');
  } catch {
    return null;
  }
}

function readCache(key: string, file: string): Features | undefined {
  try {
    const c = JSON.parse(fs.readFileSync(file, 'utf8')) as { key: string; features: Features };
    return c.key === key ? c.features : undefined;
  } catch {
    return undefined;
  }
}

function writeCache(key: string, file: string, features: Features): void {
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify({ key, features }), { mode: 0o600 });
    fs.renameSync(tmp, file);
  } catch {
    // read-only /run (a container without it): the next start probes again
  }
}

/** What this kernel offers. `fresh`: run the trials even if this boot's answers are cached (doctor). */
export function probeFeatures(opts: { fresh?: boolean; cacheFile?: string } = {}): Features {
  if (cached && !opts.fresh) return cached;
  const key = cacheKey();
  const file = opts.cacheFile ?? FEATURE_CACHE;
  const fromCache = !opts.fresh && key ? readCache(key, file) : undefined;
  if (fromCache) return (cached = { ...fromCache, tracefs: tracefsMount() });
  const btf = hasKernelBtf();
  cached = {
    btf,
    fentry: btf ? trial('try_fentry', true) : { ok: false, error: 'no kernel BTF' },
    kprobe: trial('try_kprobe', true),
    tp_btf: btf ? trial('try_tp_btf', false) : { ok: false, error: 'no kernel BTF' },
    raw_tp: trial('try_raw_tp', false),
    tracefs: tracefsMount(),
  };
  if (key) writeCache(key, file, cached);
  return cached;
}

export interface Choice {
  mode: HookMode | null;
  /** Why this rung, or why not a better one, or why inactive. */
  reason: string;
}

export type LadderProbe = 'ipvs_estimation' | 'net_rx_action' | 'icmp_rcv' | 'sock_ready';

/** sock:sk_data_ready, which every kind of socket's data-ready passes, is in Linux 6.3 and later. */
export const hasSkDataReadyTracepoint = (version: [number, number]) => version[0] > 6 || (version[0] === 6 && version[1] >= 3);

/**
 * Which socket a network wake-up was for (its flow): sock:sk_data_ready where
 * the kernel has it (6.3+: every kind of socket, one look per data-ready),
 * else the default data-ready itself (sock_def_readable) by fentry or kprobe;
 * else unknown. Never held against the session: without it flows are unknown.
 */
export function chooseSockReady(f: Features, pref: AttachPref, tracepoint: boolean): Choice {
  if (tracepoint && (pref === 'auto' || pref === 'tracepoint')) return { mode: 'tracepoint', reason: 'sock:sk_data_ready (Linux 6.3+): every kind of socket' };
  if (pref === 'auto' || pref === 'fentry' || pref === 'kprobe') {
    const c = pick(f, pref, true, true);
    if (c.mode === 'fentry' || c.mode === 'kprobe')
      return { mode: c.mode, reason: `sock_def_readable by ${c.mode}: sockets with the default data-ready (TCP, UDP); no sock:sk_data_ready before Linux 6.3` };
  }
  return {
    mode: null,
    reason: `the flows of network wake-ups are unknown: ${
      tracepoint
        ? `--attach ${pref} leaves sock:sk_data_ready out`
        : pref === 'tracepoint'
          ? 'no sock:sk_data_ready (Linux 6.3+), and --attach tracepoint rules out fentry and kprobe on sock_def_readable'
          : 'no sock:sk_data_ready (Linux 6.3+), and neither fentry nor kprobe on sock_def_readable'
    }`,
  };
}

function available(f: Features): HookMode[] {
  const out: HookMode[] = [];
  if (f.fentry.ok) out.push('fentry');
  if (f.kprobe.ok) out.push('kprobe');
  if (f.tp_btf.ok || f.raw_tp.ok) out.push('tracepoint');
  return out;
}

/** Throws EnvironmentError when a forced mode is not on this kernel. */
export function checkForced(f: Features, pref: AttachPref): void {
  if (pref === 'auto') return;
  const have = available(f);
  if (have.includes(pref)) return;
  const why = pref === 'fentry' ? f.fentry.error : pref === 'kprobe' ? f.kprobe.error : f.tp_btf.error;
  throw new EnvironmentError(`--attach ${pref}: this kernel does not allow ${pref} programs (${why}); it has: ${have.join(', ') || 'none'}`);
}

/**
 * The IPVS probe's rung on its own: it can change while tracing, as ip_vs comes
 * and goes. `holdModule` false (serve, top: left on for days): fentry is passed
 * over where kprobe exists, since an fentry link on a module function holds the
 * module (`rmmod ip_vs` fails "in use"), and a kprobe does not.
 */
export function chooseIpvsMode(f: Features, ipvs: IpvsSymbols, pref: AttachPref, holdModule = true): Choice {
  if (!ipvs.estimationTimer)
    return {
      mode: null,
      reason: !ipvs.loaded
        ? 'ip_vs is not loaded (estimation_timer not in /proc/kallsyms); attaches by itself if it loads'
        : ipvs.kthreadEstimator
          ? 'this kernel (>= 6.2) estimates IPVS rates in kthreads (ipvs-e:*), not in estimation_timer'
          : 'estimation_timer is not in /proc/kallsyms',
    };
  if (!holdModule && pref === 'auto' && f.kprobe.ok)
    return { mode: 'kprobe', reason: 'not fentry: an fentry link would hold ip_vs loaded (rmmod fails "in use"); a kprobe lets it go' };
  const c = pick(f, pref, ipvs.moduleBtf, true);
  if (c.mode !== 'fentry' && pref === 'auto' && f.fentry.ok && !ipvs.moduleBtf) c.reason = 'fentry needs ip_vs BTF (/sys/kernel/btf/ip_vs)';
  return c;
}

export function chooseModes(f: Features, ipvs: IpvsSymbols, pref: AttachPref, holdModule = true, skDataReady = true): Record<LadderProbe, Choice> {
  return {
    ipvs_estimation: chooseIpvsMode(f, ipvs, pref, holdModule),
    net_rx_action: pick(f, pref, true, true),
    icmp_rcv: pick(f, pref, true, true),
    sock_ready: chooseSockReady(f, pref, skDataReady),
  };
}

function pick(f: Features, pref: AttachPref, canFentry: boolean, canKprobe: boolean): Choice {
  const notBetter = (mode: HookMode): string => {
    const skipped: string[] = [];
    if (mode !== 'fentry' && pref === 'auto') skipped.push(`fentry ${f.fentry.ok ? 'not usable here' : `unavailable (${f.fentry.error})`}`);
    if (mode === 'tracepoint' && pref === 'auto') skipped.push(`kprobe ${f.kprobe.ok ? 'not usable here' : `unavailable (${f.kprobe.error})`}`);
    if (pref !== 'auto') skipped.push(`--attach ${pref}`);
    return skipped.join('; ');
  };
  const order: HookMode[] = pref === 'auto' ? ['fentry', 'kprobe', 'tracepoint'] : [pref];
  for (const m of order) {
    if (m === 'fentry' && f.fentry.ok && canFentry) return { mode: m, reason: notBetter(m) || 'best available' };
    if (m === 'kprobe' && f.kprobe.ok && canKprobe) return { mode: m, reason: notBetter(m) || 'fentry unavailable' };
    if (m === 'tracepoint') return { mode: m, reason: notBetter(m) };
  }
  return { mode: 'tracepoint', reason: `--attach ${pref} cannot reach this function; tracepoint equivalent` };
}
