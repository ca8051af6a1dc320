// `jitterscope doctor`: what this kernel supports (tested by loading), which
// hook each probe will use, IPVS state, RPS masks, and advice: gathered
// here, judged in diagnose/doctor.ts, rendered by report/doctor.ts.
import os from 'node:os';
import type { Argv } from 'yargs';
import { doctorAdvice, DoctorReport, DOCTOR_SCHEMA_ID } from '../diagnose/doctor';
import { doctorText } from '../report/doctor';
import { effectiveCaps, missingCaps, requireTracingCaps } from '../host/caps';
import { ipvsState, ipvsSymbols } from '../host/ipvs';
import { loadKallsyms } from '../host/kallsyms';
import { bpfSymbolNamer } from '../kernel/symbol-namer';
import { kernelVersion, lockdown } from '../host/kernel-info';
import { rpsState } from '../host/net';
import { native } from '../kernel/addon';
import { chooseModes, Choice, Features, hasSkDataReadyTracepoint, probeFeatures } from '../kernel/ladder';

function runDoctor(possibleCpus: number): DoctorReport {
  const release = os.release();
  const caps = missingCaps(effectiveCaps());
  const f: Features = probeFeatures({ fresh: true }); // doctor checks the kernel now, not what this boot cached
  // without kallsyms the IPVS estimator reads as unknown ("none")
  const { kallsyms, note } = loadKallsyms();
  const namer = bpfSymbolNamer();
  const symbols: DoctorReport['symbols'] =
    !kallsyms || kallsyms.hidden
      ? { by: 'none', reason: note ?? '' }
      : namer.works()
        ? { by: 'kernel', reason: 'a program formats each address with %pS (no read of /proc/kallsyms)' }
        : { by: 'kallsyms', reason: `the kernel refused the naming program (${namer.refusal()}): /proc/kallsyms is read and indexed once (~100 ms)` };
  const modes = chooseModes(f, ipvsSymbols(kallsyms), 'auto', true, hasSkDataReadyTracepoint(kernelVersion(release)));
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
      tracepoint: {
        ok: f.tracefs !== null,
        error: f.tracefs ? null : 'tracefs is not mounted (mount -t tracefs none /sys/kernel/tracing)',
        tracefs: f.tracefs,
      },
    },
    probes: {
      ipvs_estimation: direct(modes.ipvs_estimation),
      net_rx_action: direct(modes.net_rx_action),
      icmp_rcv: direct(modes.icmp_rcv),
      sock_ready: direct(modes.sock_ready),
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

export function doctorOptions(y: Argv): Argv<{ json: boolean }> {
  return y.option('json', { type: 'boolean', default: false, describe: 'Print jitterscope.doctor/v1 JSON' }) as unknown as Argv<{ json: boolean }>;
}

export async function doctor(argv: { json: boolean }): Promise<void> {
  requireTracingCaps();
  const d = runDoctor(native().numPossibleCpus);
  process.stdout.write(argv.json ? JSON.stringify(d, null, 1) + '\n' : doctorText(d));
}
