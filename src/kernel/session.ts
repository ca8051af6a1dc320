// A trace session: learn what the kernel offers, choose each probe's hook (the
// attach ladder), load the tracer object through the one loader sequence,
// attach, and hand every ring batch to the caller. One cleanup path (stop)
// that detaches and frees everything. What the batches mean is stream/'s job.
import os from 'node:os';
import { BpfError } from '../base/errors';
import { requireKernelBtf } from '../host/caps';
import { ipvsSymbols } from '../host/ipvs';
import { Kallsyms, loadKallsyms } from '../host/kallsyms';
import { bpfSymbolNamer } from './symbol-namer';
import { busyPolling, napiThreads } from '../host/net';
import { BatchCallback, eventRing, NativeBpfObject, NativeRingReader, readPercpuCounter } from './addon';
import { IpvsProbe } from './ipvs-probe';
import { AttachPref, checkForced, chooseModes, Choice, Features, hasSkDataReadyTracepoint, isDirect, probeFeatures } from './ladder';
import { kernelVersion } from '../host/kernel-info';
import { loadObject } from './loader';
import { attachTracer, readRunHists, tracerSpec, TracerSettings } from './tracer-spec';
import { Flavour, FLAVOUR_PREFIX, HOOKS, hooksFor, ProbeName, ProbeStatus } from './probes';

/** A session's options: the tracer object's settings (tracer-spec.ts), and these. */
export interface SessionOptions extends TracerSettings {
  /** Receives every ring batch: a view over a reused buffer, valid only during the call. */
  onBatch: BatchCallback;
  /** Force a tracepoint flavour instead of the best one the kernel has. */
  flavour?: Flavour;
  /** fentry > kprobe > tracepoint for the probes that have them. */
  attach?: AttachPref;
  /**
   * Whether a probe may hold a kernel module loaded (fentry on its function does).
   * false for commands left on for days (serve, top): module functions by kprobe,
   * attached again when the module returns. Default true.
   */
  holdModules?: boolean;
  /** Told each note made while tracing (ip_vs loaded or unloaded), besides `notes`. */
  onNote?: (note: string) => void;
}

/** What was lost on the way from the kernel: never silent (every view and report shows it). */
export interface Drops {
  /** Events the kernel could not reserve ring space for (the ring was full). */
  total: number;
  perCpu: number[];
  /** Ring records the reader could not use (short or of an unknown size). */
  badRecords: number;
  /** Ring reads that failed (ring_buffer__consume errors). */
  consumeErrors: number;
}

/** The reader drains this often besides its wakeups (tracer-spec.ts), so quiet periods are not held back. */
const DRAIN_INTERVAL_MS = 100;

export class TraceSession {
  readonly notes: string[];
  private readonly tracerProbes: Record<ProbeName, ProbeStatus>;
  private obj: NativeBpfObject | undefined;
  private ring: NativeRingReader | undefined;
  private ipvs: IpvsProbe | undefined;
  private drainTimer: NodeJS.Timeout | undefined;
  private finalDrops: Drops | undefined;
  private finalPacketWait: Buffer | null | undefined;
  private finalRunHists: (Buffer | null)[] | undefined;
  private finalStreamed = 0;
  private finalRingStats = { badRecords: 0, consumeErrors: 0 };
  /** True when short runs are counted in the kernel (SessionOptions.kernelHistsBelowNs). */
  readonly kernelHists: boolean;
  /** serve's packet hooks (SessionOptions.lateRunPacketsOnly). */
  readonly lateRunPacketsOnly: boolean;
  /** NAPI threads' wakeups are traced (SessionOptions.napiThreads). */
  readonly napiThreads: boolean;

  private constructor(
    obj: NativeBpfObject,
    attached: { probes: Record<ProbeName, ProbeStatus>; notes: string[] },
    readonly flavour: Flavour,
    readonly features: Features,
    readonly kallsyms: Kallsyms | undefined,
    ipvsChoice: Choice,
    opts: SessionOptions,
    notes: string[],
  ) {
    this.obj = obj;
    this.tracerProbes = attached.probes;
    this.notes = [...notes, ...attached.notes];
    this.kernelHists = opts.kernelHistsBelowNs !== undefined;
    this.lateRunPacketsOnly = opts.lateRunPacketsOnly ?? false;
    this.napiThreads = opts.napiThreads ?? false;
    if (this.lateRunPacketsOnly)
      this.notes.push(
        'packets are timed only in NET_RX runs that started late (from their raise, an upper bound), with no per-packet arrival hook: packet_wait counts those packets alone',
      );
    if (this.kernelHists)
      this.notes.push(
        `softirq and net_rx_action runs under ${opts.kernelHistsBelowNs! / 1e6} ms are counted in the kernel (histograms read each interval); longer ones are streamed`,
      );
    try {
      this.ring = eventRing(obj, opts.onBatch);
      this.drainTimer = setInterval(() => this.ring?.drain(), DRAIN_INTERVAL_MS).unref();
      this.ipvs = new IpvsProbe(
        {
          features,
          kallsyms,
          pref: opts.attach ?? 'auto',
          holdModule: opts.holdModules ?? true,
          flavour,
          ringFd: obj.mapFd('events'),
          dropsFd: obj.mapFd('drops'),
          note: (n) => {
            this.notes.push(n);
            opts.onNote?.(n);
          },
        },
        ipvsChoice,
        attached.probes.ipvs_estimation,
      );
      this.ipvs.follow();
    } catch (e) {
      this.stop();
      throw e;
    }
  }

  /** Chooses hooks, loads and attaches; throws BpfError with the step that failed. */
  static start(opts: SessionOptions): TraceSession {
    requireKernelBtf();
    const features = probeFeatures();
    const pref = opts.attach ?? 'auto';
    checkForced(features, pref);
    const { kallsyms, note } = loadKallsyms();
    // callbacks named by the kernel itself where it can (no 5 MB read of /proc/kallsyms)
    kallsyms?.useNamer(bpfSymbolNamer());
    const notes = note ? [note] : [];
    const ipvs = ipvsSymbols(kallsyms);
    const modes = chooseModes(features, ipvs, pref, opts.holdModules ?? true, hasSkDataReadyTracepoint(kernelVersion(os.release())));
    // the limits of the wake-up view, where they apply (docs/design.md: the application's share)
    if (ipvs.kthreadEstimator)
      notes.push(
        'IPVS estimates rates in kthreads (ipvs-e:*) on this kernel: where one holds a CPU, woken tasks and receive processing wait behind that task, named as such',
      );
    const busy = busyPolling();
    if (busy) notes.push(`busy polling is on (${busy}): a busy-polling socket makes no NET_RX raise and no wake-up, so its waits are not timed`);
    if (opts.holdModules === false && modes.ipvs_estimation.mode === 'fentry')
      notes.push(
        pref === 'fentry'
          ? '--attach fentry holds ip_vs loaded while tracing (rmmod fails "in use"); without it, estimation_timer is traced by kprobe, which lets the module go'
          : `estimation_timer by fentry holds ip_vs loaded while tracing (rmmod fails "in use"): this kernel has no kprobes (${features.kprobe.error}); --attach tracepoint lets it go`,
      );
    // not silent: which NAPI threads are timed, and at what cost
    const threads = opts.napiThreads === false ? [] : napiThreads();
    if (threads.length)
      notes.push(
        `NAPI threads (threaded=1) ${threads.map((t) => t.comm).join(', ')}: timed from wakeup to run (sched_wakeup, a look at each wakeup); their packets from the thread's wakeup`,
      );
    opts = { ...opts, napiThreads: opts.napiThreads ?? threads.length > 0 };
    let flavour: Flavour = opts.flavour ?? (features.tp_btf.ok ? 'tp_btf' : 'raw_tp');
    if (!opts.flavour && flavour === 'raw_tp') notes.push(`tp_btf unavailable (${features.tp_btf.error}): using raw_tp tracepoints`);

    // A rung that fails to load or attach falls to the tracepoint equivalent.
    for (;;) {
      try {
        let attached: ReturnType<typeof attachTracer> | undefined;
        const obj = loadObject(
          tracerSpec(flavour, modes, opts, (o) => (attached = attachTracer(o, flavour, modes, opts.lateRunPacketsOnly ?? false, opts.napiThreads ?? false))),
        );
        return new TraceSession(obj, attached!, flavour, features, kallsyms, modes.ipvs_estimation, opts, notes);
      } catch (e) {
        if (!(e instanceof BpfError) || e.step.startsWith('set ')) throw e;
        // the wake-ups' sockets first, whatever --attach said: without them only the flows are unknown
        if (isDirect(modes.sock_ready.mode)) {
          modes.sock_ready = {
            mode: null,
            reason: `the flows of network wake-ups are unknown: ${modes.sock_ready.mode} on sock_def_readable failed (${e.message})`,
          };
          notes.push(modes.sock_ready.reason);
          continue;
        }
        const upgraded = (['net_rx_action', 'icmp_rcv'] as const).filter((p) => isDirect(modes[p].mode));
        if (upgraded.length && pref === 'auto') {
          for (const p of upgraded) modes[p] = { mode: 'tracepoint', reason: `${modes[p].mode} failed (${e.message}); tracepoint equivalent` };
          notes.push(`fentry/kprobe programs failed (${e.message}); using tracepoint equivalents`);
          continue;
        }
        if (flavour === 'tp_btf' && !opts.flavour) {
          notes.push(`tp_btf programs did not load (${e.message}); falling back to raw_tp`);
          flavour = 'raw_tp';
          continue;
        }
        throw e;
      }
    }
  }

  /** Each probe's rung and state now (ipvs_estimation can change while tracing). */
  get probes(): Record<ProbeName, ProbeStatus> {
    return { ...this.tracerProbes, ipvs_estimation: this.ipvs?.status ?? this.tracerProbes.ipvs_estimation };
  }

  /** Consumes what is in the ring now (normally the event loop does this). */
  drain(): number {
    return this.ring ? this.ring.drain() : 0;
  }

  /** Events read from the ring so far. */
  streamedEvents(): number {
    return this.ring ? this.ring.stats().events : this.finalStreamed;
  }

  drops(): Drops {
    if (this.finalDrops) return this.finalDrops;
    const kernel = this.obj ? readPercpuCounter(this.obj, 'drops') : { total: 0, perCpu: [] };
    return { ...kernel, ...this.ringLoss() };
  }

  private ringLoss(): { badRecords: number; consumeErrors: number } {
    if (!this.ring) return this.finalRingStats;
    const st = this.ring.stats();
    return { badRecords: st.badRecords, consumeErrors: st.consumeErrors };
  }

  /** The kernel's per-CPU packet-wait histograms as the map holds them (struct js_hist per CPU). */
  packetWaitBytes(): Buffer | null {
    if (this.finalPacketWait !== undefined) return this.finalPacketWait;
    return this.obj ? this.obj.lookup('packet_wait', Buffer.alloc(4)) : null;
  }

  /** The kernel's per-CPU run histograms, one buffer per enum js_kernel_hist index (struct js_hist per CPU); [] when not kept. */
  runHistBytes(): (Buffer | null)[] {
    if (this.finalRunHists !== undefined) return this.finalRunHists;
    // every mode: the network wake-ups' waits are counted there (serve's short runs too)
    return this.obj ? readRunHists(this.obj, this.kernelHists) : [];
  }

  /** Kernel run time and count per tracepoint program (needs kernel.bpf_stats_enabled=1 to count). */
  programStats(): { hook: string; runTimeNs: number; runCount: number; recursionMisses: number }[] {
    const obj = this.obj;
    if (!obj) return [];
    // the hooks this session loaded; the others count nothing
    return HOOKS.map((h) => {
      if (!hooksFor(this.lateRunPacketsOnly, this.napiThreads, this.tracerProbes.wakeup.hooks.includes('sock:sk_data_ready')).includes(h))
        return { hook: h.name, runTimeNs: 0, runCount: 0, recursionMisses: 0 };
      const info = obj.programInfo(FLAVOUR_PREFIX[this.flavour] + h.name);
      return { hook: h.name, runTimeNs: info.runTimeNs, runCount: info.runCount, recursionMisses: info.recursionMisses };
    });
  }

  /** Drains, then detaches and frees everything. Safe to call more than once. */
  stop(): void {
    clearInterval(this.drainTimer);
    if (this.ring) {
      try {
        this.ring.drain();
      } finally {
        this.finalStreamed = this.ring.stats().events;
        this.finalRingStats = this.ringLoss();
        this.ring.close();
        this.ring = undefined;
      }
    }
    this.ipvs?.close();
    if (this.obj) {
      try {
        this.finalDrops = { ...readPercpuCounter(this.obj, 'drops'), ...this.finalRingStats };
        this.finalPacketWait = this.obj.lookup('packet_wait', Buffer.alloc(4));
        this.finalRunHists = readRunHists(this.obj, this.kernelHists);
      } finally {
        this.obj.close();
        this.obj = undefined;
      }
    }
  }
}
