// A trace session: learn what the kernel offers, choose each probe's hook
// (the attach ladder), open and configure the tracer object, load it, attach,
// and stream events into an Aggregator. One cleanup path (stop) that detaches
// and frees everything. The ipvs object (estimation_timer) is loaded apart,
// sharing the ring, and follows ip_vs being loaded and unloaded.

import fs from 'node:fs';
import { EVENT_SIZE, MAX_CPUS } from './abi';
import { Aggregator, AggregatorOptions } from './aggregate';
import { BpfError } from './errors';
import { requireKernelBtf } from './caps';
import { Kallsyms } from './kallsyms';
import { AttachPref, checkForced, chooseModes, Choice, Features, HookMode, ipvsSymbols, LadderProbe, probeFeatures } from './ladder';
import { native, readPercpuCounter, NativeBpfObject, NativeRingReader } from './native';
import { Flavour, FLAVOUR_PREFIX, HOOKS, PROBE_NAMES, ProbeName, ProbeStatus, TRACEPOINT_DERIVATION } from './probes';

export interface SessionOptions extends AggregatorOptions {
  /** Trace only these CPUs (all when absent). */
  cpus?: number[];
  /** Ring buffer size in bytes (power of two). */
  ringBytes?: number;
  /** Force a tracepoint flavour instead of the best one the kernel has. */
  flavour?: Flavour;
  /** fentry > kprobe > tracepoint for the probes that have them. */
  attach?: AttachPref;
  /** Called after each batch was aggregated. */
  onBatch?: (count: number) => void;
}

export interface Drops {
  total: number;
  perCpu: number[];
}

const RING_BATCH_BYTES = 256 * 1024;
const EVENTS_PER_WAKEUP = 1 << 18;
/** The BPF side wakes the reader once this much is waiting... */
const WAKEUP_BYTES = 64 * 1024;
/** ...and the reader also drains this often, so quiet periods are not held back. */
const DRAIN_INTERVAL_MS = 100;
/** How often ip_vs being loaded or unloaded is noticed. */
const IPVS_POLL_MS = 2000;

/** Program names of a ladder probe's fentry and kprobe variants. */
const LADDER_PROGRAMS: Record<'net_rx_action' | 'icmp_rcv', Record<'fentry' | 'kprobe', string[]>> = {
  net_rx_action: { fentry: ['jsf_nra_entry', 'jsf_nra_exit'], kprobe: ['jsk_nra_entry', 'jsk_nra_exit'] },
  icmp_rcv: { fentry: ['jsf_icmp_rcv'], kprobe: ['jsk_icmp_rcv'] },
};
const IPVS_PROGRAMS: Record<'fentry' | 'kprobe', string[]> = {
  fentry: ['jsf_est_entry', 'jsf_est_exit'],
  kprobe: ['jsk_est_entry', 'jsk_est_exit'],
};

export class TraceSession {
  /** Where events go now; rotate() swaps in a fresh one (for interval views). */
  aggregator: Aggregator;
  readonly probes = {} as Record<ProbeName, ProbeStatus>;
  readonly notes: string[] = [];
  readonly flavour: Flavour;
  readonly features: Features;
  readonly kallsyms: Kallsyms | undefined;
  private obj: NativeBpfObject | undefined;
  private ring: NativeRingReader | undefined;
  private ipvsObj: NativeBpfObject | undefined;
  private timers: NodeJS.Timeout[] = [];
  private finalDrops: Drops | undefined;

  private constructor(
    obj: NativeBpfObject,
    flavour: Flavour,
    private readonly modes: Record<LadderProbe, Choice>,
    private readonly opts: SessionOptions,
    features: Features,
    kallsyms: Kallsyms | undefined,
    notes: string[],
  ) {
    this.obj = obj;
    this.flavour = flavour;
    this.features = features;
    this.kallsyms = kallsyms;
    this.notes.push(...notes);
    this.aggregator = new Aggregator(opts);
    try {
      this.attachAll();
      const onBatch = opts.onBatch;
      this.ring = new (native().RingReader)(
        obj,
        'events',
        (buf, count) => {
          this.aggregator.consume(buf, count);
          if (onBatch) onBatch(count);
        },
        RING_BATCH_BYTES,
        EVENT_SIZE,
        EVENTS_PER_WAKEUP,
      );
      this.timers.push(setInterval(() => this.ring?.drain(), DRAIN_INTERVAL_MS).unref());
      if (modes.ipvs_estimation.mode === 'fentry' || modes.ipvs_estimation.mode === 'kprobe') this.attachIpvs(modes.ipvs_estimation.mode);
      this.watchIpvs();
    } catch (e) {
      this.stop();
      throw e;
    }
  }

  /** Chooses hooks, opens, configures, loads and attaches; throws BpfError with the step that failed. */
  static start(opts: SessionOptions = {}): TraceSession {
    requireKernelBtf();
    const features = probeFeatures();
    const pref = opts.attach ?? 'auto';
    checkForced(features, pref);
    const notes: string[] = [];
    let kallsyms: Kallsyms | undefined;
    try {
      kallsyms = Kallsyms.load();
      if (kallsyms.hidden) notes.push('/proc/kallsyms hides addresses (kernel.kptr_restrict): timer callbacks are shown as addresses');
    } catch (e) {
      notes.push(`cannot read /proc/kallsyms (${(e as Error).message}): timer callbacks are shown as addresses`);
    }
    const find = (name: string) => kallsyms !== undefined && !kallsyms.hidden && kallsyms.find(name) !== undefined;
    const modes = chooseModes(features, ipvsSymbols(find), pref);
    let flavour: Flavour = opts.flavour ?? (features.tp_btf.ok ? 'tp_btf' : 'raw_tp');
    if (!opts.flavour && flavour === 'raw_tp') notes.push(`tp_btf unavailable (${features.tp_btf.error}): using raw_tp tracepoints`);

    // A rung that fails to load or attach falls to the tracepoint equivalent.
    for (;;) {
      const obj = new (native().BpfObject)('tracer');
      try {
        configure(obj, flavour, modes, opts);
        obj.load();
        return new TraceSession(obj, flavour, modes, opts, features, kallsyms, notes);
      } catch (e) {
        obj.close();
        if (!(e instanceof BpfError) || e.step.startsWith('set ')) throw e;
        const upgraded = (['net_rx_action', 'icmp_rcv'] as const).filter((p) => modes[p].mode !== 'tracepoint');
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

  private attachAll(): void {
    const obj = this.obj!;
    const failed = new Map<string, string>();
    for (const hook of HOOKS) {
      try {
        obj.attach(FLAVOUR_PREFIX[this.flavour] + hook.name);
      } catch (e) {
        if (!(e instanceof BpfError)) throw e;
        failed.set(hook.name, `${hook.tracepoint}: ${e.code}`);
      }
    }
    for (const probe of ['net_rx_action', 'icmp_rcv'] as const) {
      const mode = this.modes[probe].mode;
      if (mode !== 'fentry' && mode !== 'kprobe') continue;
      // a ladder program that loads but will not attach leaves the probe blind: say so
      for (const prog of LADDER_PROGRAMS[probe][mode]) obj.attach(prog);
    }
    for (const probe of PROBE_NAMES) {
      const hooks = HOOKS.filter((h) => h.requiredBy.includes(probe) || h.helps.includes(probe));
      const missingRequired = hooks.filter((h) => h.requiredBy.includes(probe) && failed.has(h.name));
      const missingHelpers = hooks.filter((h) => h.helps.includes(probe) && failed.has(h.name));
      const ladder = (this.modes as Partial<Record<ProbeName, Choice>>)[probe];
      const direct = ladder?.mode === 'fentry' || ladder?.mode === 'kprobe';
      const status: ProbeStatus = {
        active: missingRequired.length === 0,
        mode: direct ? ladder!.mode : `${this.flavour} (${TRACEPOINT_DERIVATION[probe]})`,
        reason: ladder?.reason || null,
        hooks: direct ? [`${ladder!.mode}:${probe === 'ipvs_estimation' ? 'estimation_timer' : probe}`] : hooks.map((h) => h.tracepoint),
      };
      if (missingRequired.length && !direct) {
        status.mode = null;
        status.reason = 'could not attach ' + missingRequired.map((h) => failed.get(h.name)).join(', ');
      } else if (missingHelpers.length && !direct) {
        status.reason = [status.reason, 'partial: could not attach ' + missingHelpers.map((h) => failed.get(h.name)).join(', ')].filter(Boolean).join('; ');
      }
      if (probe === 'ipvs_estimation' && ladder?.mode === null) Object.assign(status, { active: false, mode: null });
      this.probes[probe] = status;
    }
    for (const [, why] of failed) this.notes.push(`hook not attached: ${why}`);
  }

  /** Loads the ipvs object on the tracer's ring; on failure the timer tracepoints stand in. */
  private attachIpvs(mode: 'fentry' | 'kprobe'): void {
    const tracer = this.obj!;
    const obj = new (native().BpfObject)('ipvs');
    try {
      obj.reuseMap('events', tracer.mapFd('events'));
      obj.reuseMap('drops', tracer.mapFd('drops'));
      for (const p of obj.programs()) obj.setAutoload(p.name, IPVS_PROGRAMS[mode].includes(p.name));
      obj.load();
      for (const p of IPVS_PROGRAMS[mode]) obj.attach(p);
      this.ipvsObj = obj;
      this.setProbe('ipvs_estimation', {
        active: true,
        mode,
        reason: this.modes.ipvs_estimation.reason || null,
        hooks: [`${mode}:estimation_timer`],
      });
    } catch (e) {
      obj.close();
      if (!(e instanceof BpfError)) throw e;
      this.notes.push(`ipvs_estimation: ${mode} failed (${e.message}); using timer tracepoints filtered on estimation_timer`);
      this.setProbe('ipvs_estimation', {
        active: true,
        mode: `${this.flavour} (${TRACEPOINT_DERIVATION.ipvs_estimation})`,
        reason: `${mode} failed: ${e.code}`,
        hooks: ['timer:timer_expire_entry', 'timer:timer_expire_exit'],
      });
    }
  }

  private setProbe(p: ProbeName, s: ProbeStatus): void {
    this.probes[p] = s;
  }

  /** ip_vs loaded while tracing: the probe attaches; unloaded: it goes inactive. */
  private watchIpvs(): void {
    let loaded = fs.existsSync('/sys/module/ip_vs');
    const t = setInterval(() => {
      const now = fs.existsSync('/sys/module/ip_vs');
      if (now === loaded) return;
      loaded = now;
      if (!now) {
        this.ipvsObj?.close();
        this.ipvsObj = undefined;
        this.notes.push('ip_vs was unloaded while tracing: ipvs_estimation went inactive');
        this.setProbe('ipvs_estimation', { active: false, mode: null, reason: 'ip_vs was unloaded while tracing', hooks: [] });
        return;
      }
      const find = (name: string) => this.kallsyms !== undefined && !this.kallsyms.hidden && this.kallsyms.find(name) !== undefined;
      const choice = chooseModes(this.features, ipvsSymbols(find), this.opts.attach ?? 'auto').ipvs_estimation;
      this.notes.push(`ip_vs was loaded while tracing: ipvs_estimation ${choice.mode ? `attached (${choice.mode})` : `stays inactive (${choice.reason})`}`);
      if (choice.mode === 'fentry' || choice.mode === 'kprobe') this.attachIpvs(choice.mode);
      else if (choice.mode === 'tracepoint')
        this.setProbe('ipvs_estimation', {
          active: true,
          mode: `${this.flavour} (${TRACEPOINT_DERIVATION.ipvs_estimation})`,
          reason: choice.reason,
          hooks: ['timer:timer_expire_entry', 'timer:timer_expire_exit'],
        });
      else this.setProbe('ipvs_estimation', { active: false, mode: null, reason: choice.reason, hooks: [] });
    }, IPVS_POLL_MS);
    t.unref();
    this.timers.push(t);
  }

  /** Returns the aggregator filled so far and continues into a fresh one. */
  rotate(): Aggregator {
    const done = this.aggregator;
    this.drain();
    this.aggregator = done.fresh();
    return done;
  }

  /** Consumes what is in the ring now (normally the event loop does this). */
  drain(): number {
    return this.ring ? this.ring.drain() : 0;
  }

  drops(): Drops {
    if (this.finalDrops) return this.finalDrops;
    return this.obj ? readPercpuCounter(this.obj, 'drops') : { total: 0, perCpu: [] };
  }

  /** Kernel run time and count per attached program (needs kernel.bpf_stats_enabled=1 to count). */
  programStats(): { hook: string; runTimeNs: number; runCount: number }[] {
    const obj = this.obj;
    if (!obj) return [];
    return HOOKS.map((h) => {
      const info = obj.programInfo(FLAVOUR_PREFIX[this.flavour] + h.name);
      return { hook: h.name, runTimeNs: info.runTimeNs, runCount: info.runCount };
    });
  }

  ringStats() {
    return this.ring?.stats();
  }

  get running(): boolean {
    return this.obj !== undefined;
  }

  /** Drains, then detaches and frees everything. Safe to call more than once. */
  stop(): void {
    for (const t of this.timers.splice(0)) clearInterval(t);
    if (this.ring) {
      try {
        this.ring.drain();
      } finally {
        this.ring.close();
        this.ring = undefined;
      }
    }
    this.ipvsObj?.close();
    this.ipvsObj = undefined;
    if (this.obj) {
      try {
        this.finalDrops = readPercpuCounter(this.obj, 'drops');
      } finally {
        this.obj.close();
        this.obj = undefined;
      }
    }
  }
}

function configure(obj: NativeBpfObject, flavour: Flavour, modes: Record<LadderProbe, Choice>, opts: SessionOptions): void {
  const prefix = FLAVOUR_PREFIX[flavour];
  const wanted = new Set<string>();
  for (const probe of ['net_rx_action', 'icmp_rcv'] as const) {
    const m = modes[probe].mode;
    if (m === 'fentry' || m === 'kprobe') LADDER_PROGRAMS[probe][m].forEach((p) => wanted.add(p));
  }
  for (const p of obj.programs()) obj.setAutoload(p.name, p.name.startsWith(prefix) || wanted.has(p.name));
  if (opts.ringBytes) obj.setMapMaxEntries('events', opts.ringBytes);
  const wakeup = Buffer.alloc(8);
  wakeup.writeBigUInt64LE(BigInt(Math.min(WAKEUP_BYTES, (opts.ringBytes ?? 8 << 20) / 4)));
  obj.setGlobal('wakeup_bytes', wakeup);
  const icmpRcv = modes.icmp_rcv.mode === 'fentry' || modes.icmp_rcv.mode === 'kprobe';
  obj.setGlobal('icmp_from_icmp_rcv', Buffer.from([icmpRcv ? 1 : 0]));
  if (opts.cpus) {
    const mask = Buffer.alloc(MAX_CPUS / 8);
    for (const cpu of opts.cpus) mask[cpu >> 3] |= 1 << (cpu & 7);
    obj.setGlobal('cpu_mask', mask);
    obj.setGlobal('filter_cpus', Buffer.from([1]));
  }
}

export type { HookMode };
