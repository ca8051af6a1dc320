// The attach ladder: what this kernel offers (learned by loading and attaching
// trial programs, not guessed), and which hook each probe uses.
import fs from 'node:fs';
import { BpfError, EnvironmentError } from './errors';
import { native } from './native';

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

/** Loads (and attaches, where attaching is what fails) one trial program. */
function trial(program: string, attach: boolean): Trial {
  const obj = new (native().BpfObject)('features');
  try {
    for (const p of obj.programs()) obj.setAutoload(p.name, p.name === program);
    obj.load();
    if (attach) obj.attach(program);
    return { ok: true, error: null };
  } catch (e) {
    if (!(e instanceof BpfError)) throw e;
    return { ok: false, error: `${e.step.startsWith('attach') ? 'attach' : 'load'}: ${e.code}` };
  } finally {
    obj.close();
  }
}

function tracefsMount(): string | null {
  for (const dir of ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'])
    if (fs.existsSync(`${dir}/events/irq/softirq_entry/id`)) return dir;
  return null;
}

let cached: Features | undefined;

export function probeFeatures(): Features {
  if (cached) return cached;
  const btf = fs.existsSync('/sys/kernel/btf/vmlinux');
  cached = {
    btf,
    fentry: btf ? trial('try_fentry', true) : { ok: false, error: 'no kernel BTF' },
    kprobe: trial('try_kprobe', true),
    tp_btf: btf ? trial('try_tp_btf', false) : { ok: false, error: 'no kernel BTF' },
    raw_tp: trial('try_raw_tp', false),
    tracefs: tracefsMount(),
  };
  return cached;
}

export interface IpvsSymbols {
  /** estimation_timer is in /proc/kallsyms (ip_vs loaded, kernel < 6.2). */
  estimationTimer: boolean;
  /** ip_vs has BTF (/sys/kernel/btf/ip_vs): fentry can reach its functions. */
  moduleBtf: boolean;
  /** The kthread estimator of kernels >= 6.2 is there instead. */
  kthreadEstimator: boolean;
  loaded: boolean;
}

export interface Choice {
  mode: HookMode | null;
  /** Why this rung, or why not a better one, or why inactive. */
  reason: string;
}

export type LadderProbe = 'ipvs_estimation' | 'net_rx_action' | 'icmp_rcv';

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
  throw new EnvironmentError(
    `--attach ${pref}: this kernel does not allow ${pref} programs (${why}); it has: ${have.join(', ') || 'none'}`,
  );
}

export function chooseModes(f: Features, ipvs: IpvsSymbols, pref: AttachPref): Record<LadderProbe, Choice> {
  const notBetter = (mode: HookMode): string => {
    const skipped: string[] = [];
    if (mode !== 'fentry' && pref === 'auto') skipped.push(`fentry ${f.fentry.ok ? 'not usable here' : `unavailable (${f.fentry.error})`}`);
    if (mode === 'tracepoint' && pref === 'auto') skipped.push(`kprobe ${f.kprobe.ok ? 'not usable here' : `unavailable (${f.kprobe.error})`}`);
    if (pref !== 'auto') skipped.push(`--attach ${pref}`);
    return skipped.join('; ');
  };
  const pick = (canFentry: boolean, canKprobe: boolean): Choice => {
    const order: HookMode[] = pref === 'auto' ? ['fentry', 'kprobe', 'tracepoint'] : [pref];
    for (const m of order) {
      if (m === 'fentry' && f.fentry.ok && canFentry) return { mode: m, reason: notBetter(m) || 'best available' };
      if (m === 'kprobe' && f.kprobe.ok && canKprobe) return { mode: m, reason: notBetter(m) || 'fentry unavailable' };
      if (m === 'tracepoint') return { mode: m, reason: notBetter(m) };
    }
    return { mode: 'tracepoint', reason: `--attach ${pref} cannot reach this function; tracepoint equivalent` };
  };

  let ipvsChoice: Choice;
  if (!ipvs.estimationTimer)
    ipvsChoice = {
      mode: null,
      reason: !ipvs.loaded
        ? 'ip_vs is not loaded (estimation_timer not in /proc/kallsyms); attaches by itself if it loads'
        : ipvs.kthreadEstimator
          ? 'this kernel (>= 6.2) estimates IPVS rates in kthreads (ipvs-e:*), not in estimation_timer'
          : 'estimation_timer is not in /proc/kallsyms',
    };
  else {
    ipvsChoice = pick(ipvs.moduleBtf, true);
    if (ipvsChoice.mode !== 'fentry' && pref === 'auto' && f.fentry.ok && !ipvs.moduleBtf)
      ipvsChoice.reason = 'fentry needs ip_vs BTF (/sys/kernel/btf/ip_vs)';
  }
  return { ipvs_estimation: ipvsChoice, net_rx_action: pick(true, true), icmp_rcv: pick(true, true) };
}

export function ipvsSymbols(findSymbol: (name: string) => boolean): IpvsSymbols {
  const loaded = fs.existsSync('/sys/module/ip_vs');
  return {
    loaded,
    estimationTimer: loaded && findSymbol('estimation_timer'),
    moduleBtf: fs.existsSync('/sys/kernel/btf/ip_vs'),
    kthreadEstimator: loaded && findSymbol('ip_vs_estimation_kthread'),
  };
}
