// The tracer object for a session: which programs load and with which
// globals (tracerSpec), attaching its hooks and working out every probe's
// status (attachTracer), and reading serve's run histograms.
import { BpfError } from '../base/errors';
import { KernelHistIndex, MAX_CPUS } from './abi';
import { NativeBpfObject } from './addon';
import { Choice, isDirect, LadderProbe } from './ladder';
import { globals } from './loader';
import {
  DIRECT_PROGRAMS,
  directProbes,
  Flavour,
  FLAVOUR_PREFIX,
  HOOKS,
  hooksFor,
  inactiveStatus,
  PROBE_NAMES,
  ProbeName,
  ProbeStatus,
  tracepointStatus,
} from './probes';

/** 4 MiB holds ~75,000 events: 75 ms of a 1 M events/s burst between wakeups.
 * The ring is mapped into this process, so its size is resident memory. */
const DEFAULT_RING_BYTES = 4 << 20;
/** The BPF side wakes the reader once this much is waiting (the reader also drains on a timer). */
const WAKEUP_BYTES = 64 * 1024;

/** What the tracer object is built with: the part of a session's options (SessionOptions in session.ts extends it) it needs. */
export interface TracerSettings {
  /** Trace only these CPUs (all when absent). */
  cpus?: number[];
  /** Ring buffer size in bytes (power of two). */
  ringBytes?: number;
  /** Packets that waited at least this long are streamed with their flow (default 1 ms). */
  slowPacketNs?: number;
  /** Stream every ICMP/ICMPv6 packet too, slow or not (default true: ping and the ICMP listing need them). */
  streamIcmp?: boolean;
  /**
   * Count softirq and net_rx_action runs shorter than this (ns) in the kernel's
   * run_hists instead of streaming them (serve). Absent: every run is streamed.
   */
  kernelHistsBelowNs?: number;
  /** A hard hrtimer this late (ns) is streamed as a pause: the CPU took no interrupt meanwhile (default 1 ms). */
  pauseMinNs?: number;
  /**
   * serve: no per-packet arrival hook; only packets processed in a NET_RX run
   * that started late are timed (from its raise) and streamed, and no ICMP
   * packet is listed. Every other packet costs one look at a per-CPU flag.
   */
  lateRunPacketsOnly?: boolean;
  /** Time NAPI threads from wakeup to run (sched_wakeup). Default: when any exists at start. */
  napiThreads?: boolean;
  /** A network-woken task that waited this long to run, or lost this much of its run to softirqs, is streamed (default: slowPacketNs). */
  slowWakeupNs?: number;
}

const FUNCTION_OF: Record<LadderProbe, string> = {
  ipvs_estimation: 'estimation_timer',
  net_rx_action: 'net_rx_action',
  icmp_rcv: 'icmp_rcv',
  sock_ready: 'sock_def_readable',
};

/** The kernel's run histograms by index: all of them in serve, else only the network wake-ups' waits (the rest stay empty). */
export function readRunHists(obj: NativeBpfObject, all: boolean): (Buffer | null)[] {
  const key = Buffer.alloc(4);
  return Array.from({ length: KernelHistIndex.COUNT }, (_, i) => {
    if (!all && i !== KernelHistIndex.WAKEUP_WAIT) return null;
    key.writeUInt32LE(i);
    return obj.lookup('run_hists', key);
  });
}

export function tracerSpec(flavour: Flavour, modes: Record<LadderProbe, Choice>, opts: TracerSettings, start: (o: NativeBpfObject) => void) {
  const prefix = FLAVOUR_PREFIX[flavour];
  const lateRunPacketsOnly = opts.lateRunPacketsOnly ?? false;
  const wanted = new Set<string>();
  for (const probe of directProbes(lateRunPacketsOnly)) {
    const m = modes[probe].mode;
    if (isDirect(m)) DIRECT_PROGRAMS[probe][m].forEach((p) => wanted.add(p));
  }
  // a hook this kind of session does not attach is not loaded either (verifier time; tp_btf needs its tracepoint)
  const napi = opts.napiThreads ?? false;
  const unused = new Set(
    HOOKS.filter((h) => !hooksFor(lateRunPacketsOnly, napi, modes.sock_ready.mode === 'tracepoint').includes(h)).map((h) => prefix + h.name),
  );
  const ringBytes = opts.ringBytes ?? DEFAULT_RING_BYTES;
  const g: Record<string, Buffer> = {
    wakeup_bytes: globals.u64(Math.min(WAKEUP_BYTES, ringBytes / 4)),
    icmp_from_icmp_rcv: globals.bool(isDirect(modes.icmp_rcv.mode)),
    slow_packet_ns: globals.u64(opts.slowPacketNs ?? 1e6),
    stream_icmp: globals.bool(opts.streamIcmp ?? true),
    pause_min_ns: globals.u64(opts.pauseMinNs ?? 1e6),
    // a task that held a CPU a third of a slow packet's wait while NET_RX waited there
    task_min_ns: globals.u64((opts.slowPacketNs ?? 1e6) / 3),
    napi_threads: globals.bool(napi),
    wake_min_ns: globals.u64(opts.slowWakeupNs ?? opts.slowPacketNs ?? 1e6),
  };
  if (opts.kernelHistsBelowNs !== undefined) {
    g.kernel_hists = globals.bool(true);
    g.stream_min_ns = globals.u64(opts.kernelHistsBelowNs);
  }
  if (opts.cpus) {
    g.cpu_mask = globals.cpuMask(opts.cpus, MAX_CPUS);
    g.filter_cpus = globals.bool(true);
  }
  return {
    object: 'tracer' as const,
    autoload: (p: string) => (p.startsWith(prefix) && !unused.has(p)) || wanted.has(p),
    globals: g,
    maxEntries: { events: ringBytes },
    start,
  };
}

/**
 * Attaches the tracepoint hooks (each may fail alone: the probes that need it
 * say so) and the chosen fentry/kprobe programs (which must attach), and
 * works out every probe's status.
 */
export function attachTracer(obj: NativeBpfObject, flavour: Flavour, modes: Record<LadderProbe, Choice>, lateRunPacketsOnly: boolean, napiThreads: boolean) {
  const failed = new Map<string, string>();
  const sockReady = modes.sock_ready.mode === 'tracepoint';
  const hooks = hooksFor(lateRunPacketsOnly, napiThreads, sockReady);
  for (const hook of hooks) {
    try {
      obj.attach(FLAVOUR_PREFIX[flavour] + hook.name);
    } catch (e) {
      if (!(e instanceof BpfError)) throw e;
      failed.set(hook.name, `${hook.tracepoint}: ${e.code}`);
    }
  }
  for (const probe of directProbes(lateRunPacketsOnly)) {
    const mode = modes[probe].mode;
    if (isDirect(mode)) for (const prog of DIRECT_PROGRAMS[probe][mode]) obj.attach(prog);
  }
  const probes = {} as Record<ProbeName, ProbeStatus>;
  for (const probe of PROBE_NAMES) {
    if (lateRunPacketsOnly && probe === 'icmp_rcv') {
      probes[probe] = inactiveStatus('serve lists no ICMP packets (ping and record do): an ICMP packet counts like any other, in a late NET_RX run only');
      continue;
    }
    // ipvs_estimation gets its tracepoint status here: its fallback; IpvsProbe owns its ladder
    const ladder = probe === 'ipvs_estimation' ? undefined : (modes as Partial<Record<ProbeName, Choice>>)[probe];
    if (ladder?.mode === null) {
      probes[probe] = inactiveStatus(ladder.reason);
      continue;
    }
    if (ladder && isDirect(ladder.mode)) {
      const fn = FUNCTION_OF[probe as LadderProbe];
      probes[probe] = { active: true, via: ladder.mode, mode: ladder.mode, reason: ladder.reason || null, hooks: [`${ladder.mode}:${fn}`] };
      continue;
    }
    const mine = hooks.filter((h) => h.requiredBy.includes(probe) || h.helps.includes(probe));
    const missing = (role: 'requiredBy' | 'helps') => mine.filter((h) => h[role].includes(probe) && failed.has(h.name)).map((h) => failed.get(h.name));
    const missingRequired = missing('requiredBy');
    const missingHelpers = missing('helps');
    if (missingRequired.length) {
      probes[probe] = { ...inactiveStatus('could not attach ' + missingRequired.join(', ')), hooks: mine.map((h) => h.tracepoint) };
      continue;
    }
    const s = tracepointStatus(probe, flavour, ladder?.reason || null, lateRunPacketsOnly, napiThreads, sockReady);
    if (missingHelpers.length) s.reason = [s.reason, 'partial: could not attach ' + missingHelpers.join(', ')].filter(Boolean).join('; ');
    if (probe === 'wakeup') {
      // where their flows come from, or that they are unknown (not silent)
      const f = modes.sock_ready;
      s.reason = [s.reason, f.mode === 'tracepoint' ? null : f.mode ? `flows: ${f.reason}` : f.reason].filter(Boolean).join('; ') || null;
      if (isDirect(f.mode)) s.hooks.push(`${f.mode}:${FUNCTION_OF.sock_ready}`);
    }
    probes[probe] = s;
  }
  return { probes, notes: [...failed.values()].map((why) => `hook not attached: ${why}`) };
}
