// A trace session: open the tracer object, configure it, load it (tp_btf,
// falling back to raw_tp), attach every hook, and stream events into an
// Aggregator. One cleanup path (stop) that detaches and frees everything.

import { EVENT_SIZE, MAX_CPUS } from './abi';
import { Aggregator, AggregatorOptions } from './aggregate';
import { BpfError } from './errors';
import { Kallsyms } from './kallsyms';
import { native, readPercpuCounter, NativeBpfObject, NativeRingReader } from './native';
import {
  Flavour,
  FLAVOURS,
  FLAVOUR_PREFIX,
  HOOKS,
  IPVS_SYMBOL,
  PROBE_NAMES,
  ProbeName,
  ProbeStatus,
  TRACEPOINT_DERIVATION,
} from './probes';

export interface SessionOptions extends AggregatorOptions {
  /** Trace only these CPUs (all when absent). */
  cpus?: number[];
  /** Ring buffer size in bytes (power of two). */
  ringBytes?: number;
  /** Force a tracepoint flavour instead of trying tp_btf first. */
  flavour?: Flavour;
  /** Called after each batch was aggregated. */
  onBatch?: (count: number) => void;
  /** Symbols for timer callbacks; read from /proc/kallsyms when absent. */
  kallsyms?: Kallsyms;
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

export class TraceSession {
  /** Where events go now; rotate() swaps in a fresh one (for interval views). */
  aggregator: Aggregator;
  readonly probes = {} as Record<ProbeName, ProbeStatus>;
  readonly notes: string[] = [];
  readonly flavour: Flavour;
  readonly attachedAtNs: number;
  kallsyms: Kallsyms | undefined;
  private obj: NativeBpfObject | undefined;
  private ring: NativeRingReader | undefined;
  private drainTimer: NodeJS.Timeout | undefined;
  private finalDrops: Drops | undefined;

  private constructor(obj: NativeBpfObject, flavour: Flavour, opts: SessionOptions, notes: string[]) {
    this.obj = obj;
    this.flavour = flavour;
    this.notes.push(...notes);
    this.aggregator = new Aggregator(opts);
    this.attachedAtNs = 0;
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
      this.drainTimer = setInterval(() => this.ring?.drain(), DRAIN_INTERVAL_MS).unref();
      this.attachedAtNs = Number(process.hrtime.bigint());
      this.symbolize(opts.kallsyms);
    } catch (e) {
      this.stop();
      throw e;
    }
  }

  /** Opens, configures, loads and attaches; throws BpfError with the step that failed. */
  static start(opts: SessionOptions = {}): TraceSession {
    const order = opts.flavour ? [opts.flavour] : FLAVOURS;
    const notes: string[] = [];
    let lastError: unknown;
    for (const flavour of order) {
      const obj = new (native().BpfObject)('tracer');
      try {
        configure(obj, flavour, opts);
        obj.load();
      } catch (e) {
        obj.close();
        lastError = e;
        if (!(e instanceof BpfError) || e.step.startsWith('set ')) throw e;
        notes.push(`${flavour} programs did not load (${e.message}); falling back`);
        continue;
      }
      if (flavour !== order[0]) notes.push(`using ${flavour} tracepoints instead of ${order[0]}`);
      return new TraceSession(obj, flavour, opts, notes);
    }
    throw lastError;
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
    for (const probe of PROBE_NAMES) {
      const hooks = HOOKS.filter((h) => h.requiredBy.includes(probe) || h.helps.includes(probe));
      const missingRequired = hooks.filter((h) => h.requiredBy.includes(probe) && failed.has(h.name));
      const missingHelpers = hooks.filter((h) => h.helps.includes(probe) && failed.has(h.name));
      const status: ProbeStatus = {
        active: missingRequired.length === 0,
        mode: `${this.flavour} (${TRACEPOINT_DERIVATION[probe]})`,
        reason: null,
        hooks: hooks.map((h) => h.tracepoint),
      };
      if (missingRequired.length) {
        status.mode = null;
        status.reason = 'could not attach ' + missingRequired.map((h) => failed.get(h.name)).join(', ');
      } else if (missingHelpers.length) {
        status.reason = 'partial: could not attach ' + missingHelpers.map((h) => failed.get(h.name)).join(', ');
      }
      if (probe === 'net_rx_action' || probe === 'icmp_rcv' || probe === 'ipvs_estimation') {
        const why = 'fentry/kprobe not tried (attach ladder not built yet); tracepoint equivalent';
        status.reason = status.reason ? `${status.reason}; ${why}` : why;
      }
      this.probes[probe] = status;
    }
    for (const [, why] of failed) this.notes.push(`hook not attached: ${why}`);
  }

  private symbolize(given: Kallsyms | undefined): void {
    const ipvs = this.probes.ipvs_estimation;
    try {
      this.kallsyms = given ?? Kallsyms.load();
    } catch (e) {
      this.notes.push(`cannot read /proc/kallsyms (${(e as Error).message}): timer callbacks are shown as addresses`);
    }
    if (this.kallsyms?.hidden) {
      this.notes.push('/proc/kallsyms hides addresses (kernel.kptr_restrict): timer callbacks are shown as addresses');
    }
    if (!this.kallsyms || this.kallsyms.hidden) {
      if (ipvs.active) Object.assign(ipvs, { active: false, mode: null, reason: 'cannot find estimation_timer without kallsyms' });
      return;
    }
    if (ipvs.active && this.kallsyms.find(IPVS_SYMBOL) === undefined) {
      Object.assign(ipvs, {
        active: false,
        mode: null,
        reason: `${IPVS_SYMBOL} is not in /proc/kallsyms: ip_vs is not loaded, or the kernel (>= 6.2) uses the kthread estimator`,
      });
    }
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
    clearInterval(this.drainTimer);
    if (this.ring) {
      try {
        this.ring.drain();
      } finally {
        this.ring.close();
        this.ring = undefined;
      }
    }
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

function configure(obj: NativeBpfObject, flavour: Flavour, opts: SessionOptions): void {
  const prefix = FLAVOUR_PREFIX[flavour];
  for (const p of obj.programs()) obj.setAutoload(p.name, p.name.startsWith(prefix));
  if (opts.ringBytes) obj.setMapMaxEntries('events', opts.ringBytes);
  const wakeup = Buffer.alloc(8);
  wakeup.writeBigUInt64LE(BigInt(Math.min(WAKEUP_BYTES, (opts.ringBytes ?? 8 << 20) / 4)));
  obj.setGlobal('wakeup_bytes', wakeup);
  if (opts.cpus) {
    const mask = Buffer.alloc(MAX_CPUS / 8);
    for (const cpu of opts.cpus) mask[cpu >> 3] |= 1 << (cpu & 7);
    obj.setGlobal('cpu_mask', mask);
    obj.setGlobal('filter_cpus', Buffer.from([1]));
  }
}
