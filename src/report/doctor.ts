// The doctor report as text (`jitterscope doctor` without --json).
import type { Trial } from '../kernel/ladder';
import type { DoctorReport } from '../diagnose/doctor';

const yes = (t: Trial) => (t.ok ? 'yes' : `no (${t.error})`);

export function doctorText(d: DoctorReport): string {
  const out: string[] = [];
  out.push(
    `kernel ${d.kernel.release}  BTF ${d.kernel.btf ? 'yes' : 'no'}  lockdown ${d.kernel.lockdown ?? 'n/a'}  capabilities ${d.capabilities.ok ? 'ok' : 'missing ' + d.capabilities.missing.join(', ')}`,
  );
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
      (ip.estimator === 'kthread'
        ? `, est_cpulist=${ip.estCpulist ?? '?'}, est_nice=${ip.estNice ?? '?'}, kthreads: ${ip.kthreads.join(' ') || 'none yet'}`
        : ''),
  );
  out.push('RPS:');
  for (const r of d.rps) out.push(`  ${r.interface.padEnd(12)} ${r.queues.map((q) => `${q.queue}=${q.cpus.length ? q.cpus.join(',') : 'off'}`).join(' ')}`);
  if (d.advice.length) {
    out.push('');
    out.push('advice:');
    for (const a of d.advice) out.push(`  - ${a}`);
  }
  return out.join('\n') + '\n';
}
