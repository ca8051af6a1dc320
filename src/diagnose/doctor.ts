// What doctor finds about a node, and what it advises from that: the
// doctor report's shape (jitterscope.doctor/v1, schema/doctor.v1.json) and
// its advice. Pure logic over what commands/doctor.ts gathers.
import type { IpvsState } from '../host/ipvs';
import type { RpsQueue } from '../host/net';
import type { LadderProbe, Trial } from '../kernel/ladder';
import { ipvsAdvice } from './advice';

export const DOCTOR_SCHEMA_ID = 'jitterscope.doctor/v1';

export interface DoctorReport {
  schema: typeof DOCTOR_SCHEMA_ID;
  host: string;
  kernel: { release: string; version: [number, number]; btf: boolean; lockdown: string | null };
  capabilities: { ok: boolean; missing: string[] };
  attach: { fentry: Trial; kprobe: Trial; tp_btf: Trial; raw_tp: Trial; tracepoint: Trial & { tracefs: string | null } };
  probes: Record<LadderProbe | 'timer_callbacks' | 'softirq' | 'net_rx_wait', { mode: string | null; reason: string }>;
  /** Who names timer callbacks: the kernel (a program formatting %pS), the text of /proc/kallsyms, or nobody (addresses). */
  symbols: { by: 'kernel' | 'kallsyms' | 'none'; reason: string };
  ipvs: IpvsState;
  rps: { interface: string; queues: RpsQueue[] }[];
  advice: string[];
}

/** What doctor advises, from its findings. */
export function doctorAdvice(r: Omit<DoctorReport, 'advice'>, possibleCpus: number): string[] {
  const out: string[] = [];
  if (!r.kernel.btf) out.push('This kernel has no BTF (CONFIG_DEBUG_INFO_BTF): jitterscope needs it for CO-RE; use a distribution kernel built with BTF.');
  if (!r.capabilities.ok) out.push(`Run as root: missing ${r.capabilities.missing.join(', ')}.`);
  const instead = `probes use ${r.attach.kprobe.ok ? 'kprobes' : 'tracepoints'} instead, which cost a little more or see a little less.`;
  if (r.kernel.btf && r.attach.fentry.error === 'attach: ENOTSUPP')
    // Debian's arm64 6.1, for one: the programs load, the trampoline cannot be made
    out.push(
      `fentry programs load but this kernel cannot attach them (ENOTSUPP: a kernel without DYNAMIC_FTRACE_WITH_DIRECT_CALLS, such as Debian's arm64 6.1); ${instead}`,
    );
  else if (r.kernel.btf && !r.attach.fentry.ok)
    out.push(
      `fentry is not allowed here (${r.attach.fentry.error})${r.kernel.lockdown && r.kernel.lockdown !== 'none' ? ` (kernel lockdown: ${r.kernel.lockdown})` : ''}; ${instead}`,
    );
  const ip = r.ipvs;
  if (ip.estimator === 'timer') {
    if (ip.runEstimation === 0)
      out.push('IPVS: run_estimation is 0 in this network namespace: estimation_timer skips its walk here. Check other namespaces with IPVS rules too.');
    else {
      out.push(
        `IPVS: ${ip.services ?? '?'} services and ${ip.destinations ?? '?'} destinations are walked by estimation_timer every 2 s in this namespace${ip.runEstimation === null ? ' (this kernel has no run_estimation switch)' : ''}.`,
      );
      out.push(...ipvsAdvice(ip.runEstimation !== null, false));
    }
  } else if (ip.estimator === 'kthread') {
    out.push(
      `IPVS: this kernel (>= 6.2) runs the estimator in kthreads (${ip.kthreads.join(', ') || 'none started yet'}), not in softirq: it cannot stall packets the old way. est_cpulist=${ip.estCpulist ?? '?'} and est_nice=${ip.estNice ?? '?'} place it; keep it off latency-sensitive CPUs if it shows in CPU profiles.`,
    );
  }
  const steered = r.rps.filter((d) => d.queues.some((q) => q.cpus.length > 0 && q.cpus.length < possibleCpus));
  for (const d of steered)
    out.push(
      `RPS: ${d.interface} steers received packets to CPU ${[...new Set(d.queues.flatMap((q) => q.cpus))].join(',')}; a long softirq or timer callback on those CPUs delays them (jitterscope ping shows which).`,
    );
  return out;
}
