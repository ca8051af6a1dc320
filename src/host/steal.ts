// CPU time the hypervisor took from each CPU of this (virtual) machine, from
// /proc/stat's steal column. Inside a VM, a vCPU the host preempts shows up as
// a callback or a wait that long, with nothing of the guest's to blame.
import fs from 'node:fs';

/** /proc/stat counts in USER_HZ ticks, which Linux fixes at 100 per second. */
const NS_PER_TICK = 1e7;

/** Steal so far per CPU, in ns (index = CPU number); [] where /proc/stat cannot be read. */
export function readStealNs(text?: string): number[] {
  let stat = text;
  if (stat === undefined)
    try {
      stat = fs.readFileSync('/proc/stat', 'utf8');
    } catch {
      return [];
    }
  const out: number[] = [];
  for (const line of stat.split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const f = m[2].trim().split(/\s+/).map(Number);
    out[Number(m[1])] = (f[7] ?? 0) * NS_PER_TICK;
  }
  return out;
}
