// IPVS facts from /sys, /proc and kallsyms: whether ip_vs is loaded, which
// estimator this kernel runs (estimation_timer before 6.2, kthreads since),
// the rule counts and the estimator's sysctls in this network namespace.
import fs from 'node:fs';
import { IPVS_ESTIMATION_SYMBOL, isIpvsEstimation } from '../base/host-facts';
import { Kallsyms } from './kallsyms';

/** The timer callback that walks every IPVS rule on kernels before 6.2 (defined with the host facts). */
export { IPVS_ESTIMATION_SYMBOL, isIpvsEstimation };

export function ipvsLoaded(): boolean {
  return fs.existsSync('/sys/module/ip_vs');
}

/**
 * Which load of ip_vs this is (null: not loaded): sysfs gives each new
 * /sys/module/ip_vs a new inode, so an unload and reload between two looks
 * reads as a change.
 */
export function ipvsInstance(): string | null {
  try {
    return String(fs.statSync('/sys/module/ip_vs').ino);
  } catch {
    return null;
  }
}

export interface IpvsSymbols {
  loaded: boolean;
  /** estimation_timer is in /proc/kallsyms (ip_vs loaded, kernel < 6.2). */
  estimationTimer: boolean;
  /** ip_vs has BTF (/sys/kernel/btf/ip_vs): fentry can reach its functions. */
  moduleBtf: boolean;
  /** The kthread estimator of kernels >= 6.2 is there instead. */
  kthreadEstimator: boolean;
}

export function ipvsSymbols(kallsyms: Kallsyms | undefined): IpvsSymbols {
  const loaded = ipvsLoaded();
  const has = (name: string) => loaded && kallsyms !== undefined && kallsyms.has(name);
  return {
    loaded,
    estimationTimer: has(IPVS_ESTIMATION_SYMBOL),
    moduleBtf: fs.existsSync('/sys/kernel/btf/ip_vs'),
    kthreadEstimator: has('ip_vs_estimation_kthread'),
  };
}

export interface IpvsState {
  loaded: boolean;
  services: number | null;
  destinations: number | null;
  /** net.ipv4.vs.run_estimation in this network namespace; null where the kernel lacks it. */
  runEstimation: number | null;
  estimator: 'timer' | 'kthread' | 'none';
  estCpulist: string | null;
  estNice: number | null;
  kthreads: string[];
}

function read(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

/** Counts services and destinations in /proc/net/ip_vs (this network namespace). */
export function parseIpvsTable(text: string): { services: number; destinations: number } {
  let services = 0;
  let destinations = 0;
  for (const line of text.split('\n')) {
    if (/^(TCP|UDP|SCTP|FWM)\s/.test(line)) services++;
    else if (/^\s+->\s+[0-9A-Fa-f[]/.test(line) && !/RemoteAddress/.test(line)) destinations++;
  }
  return { services, destinations };
}

function ipvsKthreads(): string[] {
  const names: string[] = [];
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const comm = read(`/proc/${pid}/comm`);
    if (comm?.startsWith('ipvs-e:')) names.push(comm);
  }
  return names.sort();
}

/** The kernel has net.ipv4.vs.run_estimation (while ip_vs is loaded; Debian 11's 5.10 has not). */
export function hasRunEstimationSwitch(): boolean {
  return fs.existsSync('/proc/sys/net/ipv4/vs/run_estimation');
}

export function ipvsState(kallsyms: Kallsyms | undefined): IpvsState {
  const sym = ipvsSymbols(kallsyms);
  const table = read('/proc/net/ip_vs');
  const counts = table !== null ? parseIpvsTable(table) : null;
  const sysctl = (n: string) => read(`/proc/sys/net/ipv4/vs/${n}`);
  const runEst = sysctl('run_estimation');
  const nice = sysctl('est_nice');
  return {
    loaded: sym.loaded,
    services: counts?.services ?? null,
    destinations: counts?.destinations ?? null,
    runEstimation: runEst === null ? null : Number(runEst),
    estimator: sym.estimationTimer ? 'timer' : sym.kthreadEstimator ? 'kthread' : 'none',
    estCpulist: sysctl('est_cpulist'),
    estNice: nice === null ? null : Number(nice),
    kthreads: sym.loaded ? ipvsKthreads() : [],
  };
}
