// Network facts from /sys/class/net of this network namespace: interfaces,
// ifindex -> name, and the RPS masks that decide which CPU processes packets.
import fs from 'node:fs';
import path from 'node:path';
import type { RpsQueue } from '../base/host-facts';

const NET = '/sys/class/net';

export function interfaceExists(name: string, root = NET): boolean {
  return /^[\w.:@-]+$/.test(name) && fs.existsSync(path.join(root, name));
}

/** Every interface's name by its ifindex. */
export function interfaceIndexes(root = NET): Record<number, string> {
  const out: Record<number, string> = {};
  for (const name of safeReaddir(root)) {
    try {
      out[Number(fs.readFileSync(path.join(root, name, 'ifindex'), 'utf8'))] = name;
    } catch {
      // interface went away while we looked
    }
  }
  return out;
}

/** Parses a sysfs CPU mask ("00000000,00000002", "2", "0") into CPU numbers. */
export function parseCpuMask(mask: string): number[] {
  const words = mask.trim().split(',').reverse();
  const cpus: number[] = [];
  words.forEach((w, wi) => {
    const v = parseInt(w || '0', 16);
    for (let b = 0; b < 32; b++) if ((v >>> b) & 1) cpus.push(wi * 32 + b);
  });
  return cpus;
}

export function formatCpuMask(cpus: number[]): string {
  const words: number[] = [];
  for (const c of cpus) words[c >> 5] = ((words[c >> 5] ?? 0) | (1 << (c & 31))) >>> 0;
  const out: string[] = [];
  for (let i = Math.max(words.length, 1) - 1; i >= 0; i--) out.push((words[i] ?? 0).toString(16).padStart(i === words.length - 1 ? 1 : 8, '0'));
  return out.join(',');
}

export type { RpsQueue };

export function rpsQueues(dev: string, root = NET): RpsQueue[] {
  const dir = path.join(root, dev, 'queues');
  return safeReaddir(dir)
    .filter((q) => q.startsWith('rx-'))
    .sort((a, b) => Number(a.slice(3)) - Number(b.slice(3)))
    .map((q) => {
      let cpus: number[] = [];
      try {
        cpus = parseCpuMask(fs.readFileSync(path.join(dir, q, 'rps_cpus'), 'utf8'));
      } catch {
        // no RPS support on this queue
      }
      return { queue: q, cpus };
    });
}

export function rpsFile(dev: string, queue: string, root = NET): string {
  return path.join(root, dev, 'queues', queue, 'rps_cpus');
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** Every interface of this network namespace that has receive queues, with their RPS masks. */
export function rpsState(root = NET): { interface: string; queues: RpsQueue[] }[] {
  return safeReaddir(root)
    .sort()
    .map((d) => ({ interface: d, queues: rpsQueues(d, root) }))
    .filter((d) => d.queues.length);
}

/**
 * The NAPI poll threads of every network namespace (kernel threads named
 * napi/DEV-ID, children of kthreadd), by pid. Their devices may live in
 * namespaces whose /sys this process does not see.
 */
export function napiThreads(proc = '/proc'): { pid: number; comm: string }[] {
  let pids: string[];
  try {
    pids = fs.readFileSync(path.join(proc, '2/task/2/children'), 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    pids = safeReaddir(proc).filter((d) => /^\d+$/.test(d)); // no CONFIG_PROC_CHILDREN: every process
  }
  const out: { pid: number; comm: string }[] = [];
  for (const pid of pids) {
    try {
      const comm = fs.readFileSync(path.join(proc, pid, 'comm'), 'utf8').trim();
      if (comm.startsWith('napi/')) out.push({ pid: Number(pid), comm });
    } catch {
      // it exited while we looked
    }
  }
  return out.sort((a, b) => a.pid - b.pid);
}

/**
 * Busy polling, where it is on (net.core.busy_poll / busy_read, microseconds):
 * a socket that busy-polls makes no NET_RX raise and no wake-up. Null when off.
 */
export function busyPolling(): string | null {
  const on: string[] = [];
  for (const name of ['busy_poll', 'busy_read']) {
    try {
      const v = Number(fs.readFileSync(`/proc/sys/net/core/${name}`, 'utf8').trim());
      if (v > 0) on.push(`net.core.${name}=${v}`);
    } catch {
      // not in this kernel
    }
  }
  return on.length ? on.join(', ') : null;
}
