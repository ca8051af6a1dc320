// `jitterscope doctor`: what this kernel supports (tested by loading), which
// hook each probe will use, IPVS state, RPS masks, and advice.
import os from 'node:os';
import type { Argv } from 'yargs';
import { ipvsAdvice } from '../diagnose/advice';
import { effectiveCaps, missingCaps, requireTracingCaps } from '../host/caps';
import { ipvsState, IpvsState, ipvsSymbols } from '../host/ipvs';
import { loadKallsyms } from '../host/kallsyms';
import { bpfSymbolNamer } from '../kernel/symbol-namer';
import { kernelVersion, lockdown } from '../host/kernel-info';
import { RpsQueue, rpsState } from '../host/net';
import { native } from '../kernel/addon';
import { chooseModes, Choice, Features, LadderProbe, probeFeatures, Trial } from '../kernel/ladder';

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
function doctorAdvice(r: Omit<DoctorReport, 'advice'>, possibleCpus: number): string[] {
  const out: string[] = [];
  if (!r.kernel.btf) out.push('This kernel has no BTF (CONFIG_DEBUG_INFO_BTF): jitterscope needs it for CO-RE; use a distribution kernel built with BTF.');
  if (!r.capabilities.ok) out.push(`Run as root: missing ${r.capabilities.missing.join(', ')}.`);
  const instead = `probes use ${r.attach.kprobe.ok ? 'kprobes' : 'tracepoints'} instead, which cost a little more or see a little less.`;
  if (r.kernel.btf && r.attach.fentry.error === 'attach: ENOTSUPP')
    // Debian's arm64 6.1, for one: the programs load, the trampoline cannot be made
    out.push(`fentry programs load but this kernel cannot attach them (ENOTSUPP: a kernel without DYNAMIC_FTRACE_WITH_DIRECT_CALLS, such as Debian's arm64 6.1); ${instead}`);
  else if (r.kernel.btf && !r.attach.fentry.ok)
    out.push(
      `fentry is not allowed here (${r.attach.fentry.error})${r.kernel.lockdown && r.kernel.lockdown !== 'none' ? ` (kernel lockdown: ${r.kernel.lockdown})` : ''}; ${instead}`,
    );
  const ip = r.ipvs;
  if (ip.estimator === 'timer') {
    if (ip.runEstimation === 0) out.push('IPVS: run_estimation is 0 in this network namespace: estimation_timer skips its walk here. Check other namespaces with IPVS rules too.');
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

function runDoctor(possibleCpus: number): DoctorReport {
  const release = os.release();
  const caps = missingCaps(effectiveCaps());
  const f: Features = probeFeatures({ fresh: true }); // doctor checks the kernel now, not what this boot cached
  // without kallsyms the IPVS estimator reads as unknown ("none")
  const { kallsyms, note } = loadKallsyms();
  const namer = bpfSymbolNamer();
  const symbols: DoctorReport['symbols'] = !kallsyms || kallsyms.hidden
    ? { by: 'none', reason: note ?? '' }
    : namer.works()
      ? { by: 'kernel', reason: 'a program formats each address with %pS (no read of /proc/kallsyms)' }
      : { by: 'kallsyms', reason: `the kernel refused the naming program (${namer.refusal()}): /proc/kallsyms is read and indexed once (~100 ms)` };
  const modes = chooseModes(f, ipvsSymbols(kallsyms), 'auto');
  const tp = f.tp_btf.ok ? 'tp_btf' : f.raw_tp.ok ? 'raw_tp' : null;
  const direct = (c: Choice) => ({ mode: c.mode === 'tracepoint' ? tp : c.mode, reason: c.reason });
  const tracepointOnly = { mode: tp, reason: tp === 'raw_tp' ? `tp_btf unavailable (${f.tp_btf.error})` : '' };
  const base: Omit<DoctorReport, 'advice'> = {
    schema: DOCTOR_SCHEMA_ID,
    host: os.hostname(),
    kernel: { release, version: kernelVersion(release), btf: f.btf, lockdown: lockdown() },
    capabilities: { ok: caps.length === 0, missing: caps },
    attach: {
      fentry: f.fentry,
      kprobe: f.kprobe,
      tp_btf: f.tp_btf,
      raw_tp: f.raw_tp,
      tracepoint: { ok: f.tracefs !== null, error: f.tracefs ? null : 'tracefs is not mounted (mount -t tracefs none /sys/kernel/tracing)', tracefs: f.tracefs },
    },
    probes: {
      ipvs_estimation: direct(modes.ipvs_estimation),
      net_rx_action: direct(modes.net_rx_action),
      icmp_rcv: direct(modes.icmp_rcv),
      timer_callbacks: tracepointOnly,
      softirq: tracepointOnly,
      net_rx_wait: tracepointOnly,
    },
    symbols,
    ipvs: ipvsState(kallsyms),
    rps: rpsState(),
  };
  return { ...base, advice: doctorAdvice(base, possibleCpus) };
}

const yes = (t: Trial) => (t.ok ? 'yes' : `no (${t.error})`);

function doctorText(d: DoctorReport): string {
  const out: string[] = [];
  out.push(`kernel ${d.kernel.release}  BTF ${d.kernel.btf ? 'yes' : 'no'}  lockdown ${d.kernel.lockdown ?? 'n/a'}  capabilities ${d.capabilities.ok ? 'ok' : 'missing ' + d.capabilities.missing.join(', ')}`);
  out.push('');
  out.push('attach modes (tested by loading):');
  out.push(`  fentry      ${yes(d.attach.fentry)}`);
  out.push(`  kprobe      ${yes(d.attach.kprobe)}`);
  out.push(`  tp_btf      ${yes(d.attach.tp_btf)}`);
  out.push(`  raw_tp      ${yes(d.attach.raw_tp)}`);
  out.push(`  tracepoint  ${d.attach.tracepoint.ok ? `yes (${d.attach.tracepoint.tracefs})` : `no (${d.attach.tracepoint.error})`}`);
  out.push(`callback names: ${{ kernel: 'by the kernel', kallsyms: 'from /proc/kallsyms', none: 'none, addresses only' }[d.symbols.by]} — ${d.symbols.reason}`);
  out.push('');
  out.push('probes will use:');
  for (const [name, p] of Object.entries(d.probes)) out.push(`  ${name.padEnd(16)} ${p.mode ?? 'inactive'}${p.reason ? ` — ${p.reason}` : ''}`);
  out.push('');
  const ip = d.ipvs;
  out.push(
    `IPVS: ${ip.loaded ? 'loaded' : 'not loaded'}${ip.loaded ? `, ${ip.services ?? '?'} services, ${ip.destinations ?? '?'} destinations, run_estimation=${ip.runEstimation ?? 'n/a'}, estimator: ${ip.estimator}` : ''}` +
      (ip.estimator === 'kthread' ? `, est_cpulist=${ip.estCpulist ?? '?'}, est_nice=${ip.estNice ?? '?'}, kthreads: ${ip.kthreads.join(' ') || 'none yet'}` : ''),
  );
  out.push('RPS:');
  for (const r of d.rps)
    out.push(`  ${r.interface.padEnd(12)} ${r.queues.map((q) => `${q.queue}=${q.cpus.length ? q.cpus.join(',') : 'off'}`).join(' ')}`);
  if (d.advice.length) {
    out.push('');
    out.push('advice:');
    for (const a of d.advice) out.push(`  - ${a}`);
  }
  return out.join('\n') + '\n';
}

export function doctorOptions(y: Argv): Argv<{ json: boolean }> {
  return y.option('json', { type: 'boolean', default: false, describe: 'Print jitterscope.doctor/v1 JSON' }) as unknown as Argv<{ json: boolean }>;
}

export async function doctor(argv: { json: boolean }): Promise<void> {
  requireTracingCaps();
  const d = runDoctor(native().numPossibleCpus);
  process.stdout.write(argv.json ? JSON.stringify(d, null, 1) + '\n' : doctorText(d));
}
