// What every tracing command shares: the one-line messages, stop signals,
// the --attach option, starting a live trace with its notes shown, and the
// report of a finished trace.
import { ClockPair, monotonicNs } from '../base/clock';
import type { HostFacts } from '../base/host-facts';
import { requireTracingCaps } from '../host/caps';
import { gatherHostFacts } from '../host/facts';
import { yieldToReceiveProcessing } from '../host/priority';
import { native } from '../kernel/addon';
import { ATTACH_PREFS, AttachPref } from '../kernel/ladder';
import { buildReport, Report } from '../report/model';
import { Aggregator } from '../stream/aggregate';
import { LiveTrace, LiveTraceOptions } from '../stream/live';
import { parseCpuList } from '../base/options';

// eslint-disable-next-line @typescript-eslint/no-require-imports -- package.json is outside the TypeScript tree: read at run time
export const VERSION: string = require('../../../package.json').version;

/** One line on stderr, prefixed with the tool's name. */
export function say(line: string): void {
  process.stderr.write(`jitterscope: ${line}\n`);
}

const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Resolves on the first stop signal (with its name); `dispose` removes the handlers. */
export function onStopSignal(): { signalled: Promise<string>; dispose: () => void } {
  let handler: (s: NodeJS.Signals) => void = () => undefined;
  const signalled = new Promise<string>((resolve) => {
    handler = (s) => resolve(s);
    for (const s of STOP_SIGNALS) process.on(s, handler);
  });
  return { signalled, dispose: () => STOP_SIGNALS.forEach((s) => process.removeListener(s, handler)) };
}

/** After the first stop signal: a second one while the report is written ends at once, detached. */
export function exitOnSecondSignal(stop: () => void): void {
  for (const s of STOP_SIGNALS)
    process.once(s, () => {
      stop();
      process.exit(130);
    });
}

export const ATTACH_OPTION = {
  choices: [...ATTACH_PREFS],
  default: 'auto',
  describe: 'Hook for ipvs_estimation, net_rx_action and icmp_rcv: the best the kernel has, or force one',
} as const;

export const WAKEUP_MS_OPTION = {
  type: 'string',
  describe: 'A task woken by receive processing that waited this long to run, or lost this much of its run to softirqs, is slow (default: --packet-ms)',
} as const;

export const CPUS_OPTION = { type: 'string', describe: 'Trace only these CPUs, e.g. 0,2-3 (default: all)' } as const;

/** Capabilities first, then the CPU list against this machine's CPUs. */
export function tracingPreflight(cpusArg: string | undefined): { possible: number; cpus: number[] | undefined } {
  requireTracingCaps();
  const possible = native().numPossibleCpus;
  return { possible, cpus: cpusArg !== undefined ? parseCpuList(cpusArg, possible) : undefined };
}

/** Starts tracing and says what is degraded: notes, inactive probes, probes below their best rung. */
export function startTrace({ nice, ...opts }: Omit<LiveTraceOptions, 'attach'> & { attach: string; nice?: number }, quiet = false): LiveTrace {
  // the observer must not delay what it observes: ksoftirqd and NAPI threads first (host/priority.ts)
  const unchanged = yieldToReceiveProcessing(nice);
  if (unchanged && !quiet)
    say(`note: ${unchanged} of this process's threads kept their priority (setpriority refused); receive processing may wait behind them`);
  // notes made later (ip_vs loaded or unloaded while tracing) are said as they come
  const onNote = quiet ? undefined : (n: string) => say(`note: ${n}`);
  // time series count from here (intervals then line up with the trace's start)
  const trace = LiveTrace.start({ ...opts, onNote, seriesOriginNs: opts.seriesOriginNs ?? monotonicNs(), attach: opts.attach as AttachPref });
  if (!quiet) {
    for (const n of trace.session.notes) say(`note: ${n}`);
    for (const [name, p] of Object.entries(trace.session.probes)) if (!p.active) say(`probe ${name} inactive: ${p.reason}`);
    // a probe with a reason on a rung below fentry fell back: say which and why
    // (not when --attach put it there)
    const fallbacks = Object.entries(trace.session.probes)
      .filter(([, p]) => p.active && p.reason && p.via !== 'fentry' && !/^--attach \w+$/.test(p.reason))
      .map(([name, p]) => `${name} by ${(p.mode ?? '').split(' ')[0]} (${p.reason})`);
    if (fallbacks.length) say(`fallback: ${fallbacks.join('; ')}`);
  }
  return trace;
}

export interface ReportOfTrace {
  trace: LiveTrace;
  /** What to report: the whole trace (default, its aggregator) or one window of it (serve's /report). */
  aggregator?: Aggregator;
  /** When what is reported began, on both clocks. */
  start: ClockPair;
  extraNotes?: string[];
  possibleCpus: number;
  tracedCpus?: number[];
  /** The host's facts for the verdict; gathered now unless given. */
  facts?: HostFacts;
}

/** The one way a command makes a report of a trace (record, ping, serve's /report). */
export function reportFromTrace(o: ReportOfTrace): Report {
  const s = o.trace.session;
  return buildReport({
    aggregator: o.aggregator ?? o.trace.aggregator,
    probes: s.probes,
    notes: [...s.notes, ...(o.extraNotes ?? [])],
    drops: o.trace.drops(),
    kallsyms: s.kallsyms,
    start: o.start,
    endWall: new Date(),
    possibleCpus: o.possibleCpus,
    tracedCpus: o.tracedCpus,
    command: process.argv.slice(1),
    version: VERSION,
    facts: o.facts ?? gatherHostFacts(),
  });
}
