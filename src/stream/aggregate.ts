// Aggregation of decoded events into per-probe, per-CPU (and per-key)
// histograms, plus the bounded lists that views need: ICMP packets, slow
// packets of any protocol, and stalls. Runs once per batch in the hot path:
// no allocation per event except for the rare packet and stall records.

import { Flag, Func, Kind, NET_RX_SOFTIRQ, NR_SOFTIRQS } from '../kernel/abi';
import { EventView, WORDS_PER_EVENT } from './decode';
import { Histogram } from './histogram';
import { KernelCounts, KernelHist, KernelTable } from './kernel-histogram';
import { Newest, Packet, PROTOCOLS, Protocol, ReceiveStall, SocketFlow, Stall, Wakeup } from './records';
import { Series } from './series';

export type { Packet, Protocol, ReceiveStall, SocketFlow, Stall, StallKind, Wakeup } from './records';
export { Newest } from './records';

const MAX_FUNC = Math.max(...Object.values(Func));
/** The tracer's own slow wake-ups kept (the mesh's UDP prober: a few a second at most). */
const OWN_WAKEUPS_KEPT = 2000;

export interface TimerStats {
  kind: 'timer' | 'hrtimer';
  /** Callback address, low 52 bits. */
  key: number;
  perCpu: (Histogram | undefined)[];
}

export interface AggregatorOptions {
  /** Runs at least this long are kept as stalls (ns). */
  stallThresholdNs?: number;
  /** Packets that waited at least this long are slow (ns); the kernel streams them. */
  slowPacketNs?: number;
  maxPackets?: number;
  maxStalls?: number;
  /** Keep per-CPU time series at this interval (ns), from `seriesOriginNs`; 0 or absent: none. */
  seriesIntervalNs?: number;
  seriesOriginNs?: number;
  /** A network-woken task that waited this long, or lost this much of its run, is slow (ns; default slowPacketNs): the kernel streams those. */
  slowWakeupNs?: number;
  /** The tracer's own process id: its threads holding a CPU while NET_RX waits are kept as 'self', not 'task'. */
  selfPid?: number;
}

export class Aggregator {
  readonly softirq: (Histogram | undefined)[][] = [];
  readonly softirqWait: (Histogram | undefined)[][] = [];
  readonly timers = new Map<number, TimerStats>();
  /** Runs of functions traced by fentry/kprobe: [enum js_func][cpu]. */
  readonly funcs: (Histogram | undefined)[][] = [];
  readonly icmpWait: (Histogram | undefined)[] = [];
  readonly icmpCount: number[] = [];
  /** ICMP and ICMPv6 packets, oldest first, up to maxPackets. */
  readonly icmp: Packet[] = [];
  icmpNotKept = 0;
  /** What the kernel counted itself (LiveTrace): every packet's wait, and serve's short softirq and net_rx_action runs. */
  readonly kernel = new KernelCounts();
  private readonly unseen: number[] = [];
  /** Pauses per CPU: how late hard hrtimers fired (the CPU took no interrupt meanwhile). */
  readonly pauses: (Histogram | undefined)[] = [];
  private readonly steal: number[] = [];
  private readonly slowRing: Newest<Packet>;
  private readonly stallRing: Newest<Stall>;
  private readonly receiveRing: Newest<ReceiveStall>;
  private readonly wakeRing: Newest<Wakeup>;
  /** The tracer's own threads' slow wake-ups: kept apart, out of reports (the mesh's prober reads its own). */
  private readonly ownWakeRing: Newest<Wakeup>;
  /** Each WAKE_FLOW record by pid until its wake-up (streamed right after it) takes it. */
  private readonly wakeFlows = new Map<number, { startNs: number; flow: SocketFlow }>();
  readonly events = { softirq: 0, timer: 0, hrtimer: 0, packet: 0, func: 0, pause: 0, task: 0, wakeup: 0, unknown: 0 };
  firstNs = 0;
  lastNs = 0;

  readonly stallThresholdNs: number;
  readonly slowPacketNs: number;
  readonly maxPackets: number;
  readonly maxStalls: number;
  readonly selfPid: number | undefined;
  readonly slowWakeupNs: number;
  /** Per-interval figures, when asked for. */
  readonly series: Series | undefined;
  private view: EventView | undefined;

  constructor(opts: AggregatorOptions = {}) {
    this.stallThresholdNs = opts.stallThresholdNs ?? 1_000_000;
    this.slowPacketNs = opts.slowPacketNs ?? 1_000_000;
    this.maxPackets = opts.maxPackets ?? 10_000;
    this.maxStalls = opts.maxStalls ?? 10_000;
    this.selfPid = opts.selfPid;
    this.slowWakeupNs = opts.slowWakeupNs ?? this.slowPacketNs;
    this.slowRing = new Newest(this.maxPackets);
    this.stallRing = new Newest(this.maxStalls);
    this.receiveRing = new Newest(this.maxStalls);
    this.wakeRing = new Newest(this.maxStalls);
    this.ownWakeRing = new Newest(Math.min(OWN_WAKEUPS_KEPT, this.maxStalls));
    if (opts.seriesIntervalNs) this.series = new Series(opts.seriesIntervalNs, opts.seriesOriginNs ?? 0);
  }

  /**
   * An empty aggregator with the same options, or with some of them changed.
   * A wake-up's flow record still waiting for its wake-up (the other CPU's
   * program between its two submits as the interval closed) moves with it.
   */
  fresh(changed: Pick<AggregatorOptions, 'maxPackets' | 'maxStalls'> = {}): Aggregator {
    const next = this.freshEmpty(changed);
    for (const [pid, f] of this.wakeFlows) next.wakeFlows.set(pid, f);
    this.wakeFlows.clear();
    return next;
  }

  private freshEmpty(changed: Pick<AggregatorOptions, 'maxPackets' | 'maxStalls'>): Aggregator {
    return new Aggregator({
      stallThresholdNs: this.stallThresholdNs,
      slowPacketNs: this.slowPacketNs,
      maxPackets: this.maxPackets,
      maxStalls: this.maxStalls,
      seriesIntervalNs: this.series?.intervalNs,
      seriesOriginNs: this.series?.originNs,
      selfPid: this.selfPid,
      slowWakeupNs: this.slowWakeupNs,
      ...changed,
    });
  }

  get totalEvents(): number {
    const e = this.events;
    return e.softirq + e.timer + e.hrtimer + e.packet + e.func + e.pause + e.task + e.wakeup + e.unknown;
  }

  get stallsNotKept(): number {
    return this.stallRing.dropped;
  }

  get slowPacketsNotKept(): number {
    return this.slowRing.dropped;
  }

  get receiveStallsNotKept(): number {
    return this.receiveRing.dropped;
  }

  get wakeupsNotKept(): number {
    return this.wakeRing.dropped;
  }

  /** Consumes `count` events from the start of `buffer`. */
  consume(buffer: ArrayBuffer, count: number): void {
    let v = this.view;
    if (!v || v.buffer !== buffer) v = this.view = new EventView(buffer);
    for (let i = 0; i < count; i++) {
      const w = i * WORDS_PER_EVENT;
      const kind = v.kind(w);
      const cpu = v.cpu(w);
      const start = v.startNs(w);
      if (start > this.lastNs) this.lastNs = start;
      if (!this.firstNs || start < this.firstNs) this.firstNs = start;
      if (kind === Kind.SOFTIRQ) {
        this.events.softirq++;
        const vec = v.keyLo(w);
        if (vec >= NR_SOFTIRQS) continue;
        const d = v.durationNs(w);
        if (v.flags(w) & Flag.THREADED) {
          // a NAPI thread's late run: a receive stall, not a softirq run (only late ones stream)
          const wait = v.softirqWaitNs(w);
          this.receiveRing.push({ cpu, raiseNs: start - wait, startNs: start, waitNs: wait, runNs: d, deferred: false, napiThread: v.softirqThreadPid(w) });
          continue;
        }
        (this.cpuRow(this.softirq, cpu)[vec] ??= new Histogram()).record(d);
        // a wait longer than the clock had run is not one (a raise read after its run began): unknown
        const wait = v.flags(w) & Flag.WAIT_UNKNOWN || v.softirqWaitNs(w) > start ? null : v.softirqWaitNs(w);
        if (wait !== null) (this.cpuRow(this.softirqWait, cpu)[vec] ??= new Histogram()).record(wait);
        this.series?.softirq(cpu, vec, start, d, wait);
        if (d >= this.stallThresholdNs) this.stallRing.push({ kind: 'softirq', cpu, key: vec, startNs: start, durationNs: d });
        if (vec === NET_RX_SOFTIRQ && wait !== null && wait >= this.slowPacketNs)
          this.receiveRing.push({
            cpu,
            raiseNs: start - wait,
            startNs: start,
            waitNs: wait,
            runNs: d,
            deferred: (v.flags(w) & Flag.DEFERRED) !== 0,
            napiThread: null,
          });
      } else if (kind === Kind.TIMER || kind === Kind.HRTIMER) {
        const hr = kind === Kind.HRTIMER;
        if (hr) this.events.hrtimer++;
        else this.events.timer++;
        const key = v.key52(w);
        let t = this.timers.get(key);
        if (!t) {
          t = { kind: hr ? 'hrtimer' : 'timer', key, perCpu: [] };
          this.timers.set(key, t);
        }
        const d = v.durationNs(w);
        (t.perCpu[cpu] ??= new Histogram()).record(d);
        this.series?.timer(cpu, key, start, d);
        if (d >= this.stallThresholdNs) this.stallRing.push({ kind: t.kind, cpu, key, startNs: start, durationNs: d });
      } else if (kind === Kind.PAUSE) {
        this.events.pause++;
        const d = v.durationNs(w);
        (this.pauses[cpu] ??= new Histogram()).record(d);
        if (d >= this.stallThresholdNs) this.stallRing.push({ kind: 'pause', cpu, key: v.key52(w), startNs: start, durationNs: d });
      } else if (kind === Kind.TASK) {
        this.events.task++;
        // the tracer's own threads are named by its process id, one culprit whichever thread it was
        const self = v.taskTgid(w) === this.selfPid;
        this.stallRing.push({
          kind: self ? 'self' : 'task',
          cpu,
          key: self ? v.taskTgid(w) : v.taskPid(w),
          startNs: start,
          durationNs: v.durationNs(w),
          label: v.taskComm(w),
        });
      } else if (kind === Kind.WAKEUP) {
        this.events.wakeup++;
        // the tracer's own threads woken (serve's HTTP server by a scrape) are the observer's business: kept apart
        const pid = v.wakePid(w);
        const f = this.wakeFlows.get(pid);
        if (f) this.wakeFlows.delete(pid);
        const stolen = (v.flags(w) & Flag.STOLEN) !== 0;
        const ready = (v.flags(w) & Flag.READY) !== 0;
        (v.wakeTgid(w) === this.selfPid ? this.ownWakeRing : this.wakeRing).push({
          kind: stolen ? 'stolen' : ready ? 'ready' : 'wait',
          cpu,
          wakerCpu: stolen ? null : v.wakeWakerCpu(w),
          pid,
          tgid: v.wakeTgid(w),
          comm: v.wakeComm(w),
          startNs: start,
          durationNs: v.durationNs(w),
          stolenNs: stolen ? v.wakeStolenNs(w) : 0,
          ...(ready ? { queuedNs: v.wakeQueuedNs(w) || null } : {}),
          flow: f && f.startNs === start ? f.flow : null,
        });
      } else if (kind === Kind.WAKE_FLOW) {
        // a wake-up whose record was lost leaves its flow behind: bounded
        if (this.wakeFlows.size >= 1024) this.wakeFlows.clear();
        this.wakeFlows.set(v.keyLo(w), { startNs: start, flow: socketFlow(v, w) });
      } else if (kind === Kind.PACKET) {
        this.events.packet++;
        this.addPacket(v, w, cpu, start);
      } else if (kind === Kind.FUNC) {
        // no stall record: the same run also arrives as a timer or softirq event
        this.events.func++;
        const fn = v.keyLo(w);
        if (fn > MAX_FUNC) continue;
        ((this.funcs[fn] ??= [])[cpu] ??= new Histogram()).record(v.durationNs(w));
      } else {
        this.events.unknown++;
      }
    }
  }

  private addPacket(v: EventView, w: number, cpu: number, start: number): void {
    const flags = v.flags(w);
    const v6 = (flags & Flag.IPV6) !== 0;
    const unknown = (flags & Flag.WAIT_UNKNOWN) !== 0;
    const protoNum = v.pktProto(w);
    const proto = PROTOCOLS[protoNum] ?? (`ip-${protoNum}` as Protocol);
    const isIcmp = proto === 'icmp' || proto === 'icmpv6';
    const wait = v.durationNs(w);
    const p: Packet = {
      startNs: start,
      cpu,
      arrivalCpu: v.pktArrivalCpu(w),
      ifindex: v.keyLo(w),
      family: v6 ? 6 : 4,
      proto,
      saddr: v.pktSaddr(w, v6),
      daddr: v.pktDaddr(w, v6),
      sport: isIcmp ? null : v.pktSport(w),
      dport: isIcmp ? null : v.pktDport(w),
      type: isIcmp ? v.pktType(w) : null,
      code: isIcmp ? v.pktCode(w) : null,
      id: isIcmp ? v.pktSport(w) : null,
      seq: isIcmp ? v.pktDport(w) : null,
      waitNs: unknown ? null : wait,
      slow: (flags & Flag.SLOW) !== 0,
      path: flags & Flag.LATE_RUN ? 'late-run' : flags & Flag.WAIT_BOUND ? 'napi-bound' : flags & Flag.NAPI ? 'napi' : 'backlog',
    };
    if (p.slow) {
      this.slowRing.push(p);
      this.series?.slowPacket(cpu, start);
    }
    if (!isIcmp) return;
    this.icmpCount[cpu] = (this.icmpCount[cpu] ?? 0) + 1;
    if (!unknown) (this.icmpWait[cpu] ??= new Histogram()).record(wait);
    if (this.icmp.length < this.maxPackets) this.icmp.push(p);
    else this.icmpNotKept++;
  }

  /**
   * Adds what the kernel counted (packet waits; serve's short runs), kept as
   * it came (KernelCounts); runs count as events, not as stalls or series
   * points (the kernel streams every run long enough to be a stall).
   */
  /** CPU time the hypervisor stole from each CPU meanwhile, ns (LiveTrace adds it). */
  get stealNs(): readonly number[] {
    return this.steal;
  }

  /** Packets whose arrival the kernel did not see, per CPU. */
  get packetWaitUnknown(): readonly number[] {
    return this.unseen;
  }

  /** Steal the host took from `cpu` (ns), read from /proc/stat. */
  addSteal(cpu: number, ns: number): void {
    this.steal[cpu] = (this.steal[cpu] ?? 0) + ns;
  }

  /** Packets on `cpu` whose arrival the kernel did not see (counted in the kernel). */
  addPacketWaitUnknown(cpu: number, n: number): void {
    this.unseen[cpu] = (this.unseen[cpu] ?? 0) + n;
  }

  addKernel(table: KernelTable, cpu: number, key: number, h: KernelHist): void {
    if ((table === 'softirq' || table === 'softirqWait') && key >= NR_SOFTIRQS) return;
    this.kernel.add(table, cpu, key, h);
    if (table === 'softirq') this.events.softirq += h.count;
    else if (table === 'func') this.events.func += h.count;
  }

  private cpuRow(table: (Histogram | undefined)[][], cpu: number): (Histogram | undefined)[] {
    return (table[cpu] ??= new Array<Histogram | undefined>(NR_SOFTIRQS));
  }

  /** Kept stalls, oldest first. */
  stalls(): Stall[] {
    return this.stallRing.list();
  }

  /** Kept receive stalls (NET_RX runs that started late), oldest first. */
  receiveStalls(): ReceiveStall[] {
    return this.receiveRing.list();
  }

  /** Kept slow wake-ups and stolen runs of network-woken tasks, oldest first. */
  wakeups(): Wakeup[] {
    return this.wakeRing.list();
  }

  /** The tracer's own threads' slow wake-ups and stolen runs, oldest first: never in a report. */
  ownWakeups(): Wakeup[] {
    return this.ownWakeRing.list();
  }

  /** Kept slow packets (any protocol), oldest first. */
  slowPackets(): Packet[] {
    return this.slowRing.list();
  }

  /** Folds another aggregator (e.g. an interval) into this one. */
  merge(o: Aggregator): this {
    const mergeTable = (into: (Histogram | undefined)[][], from: (Histogram | undefined)[][]) =>
      from.forEach((row, cpu) =>
        row?.forEach((h, k) => {
          if (h) (this.cpuRow(into, cpu)[k] ??= new Histogram()).merge(h);
        }),
      );
    const mergeList = (into: (Histogram | undefined)[], from: (Histogram | undefined)[]) =>
      from.forEach((h, cpu) => h && (into[cpu] ??= new Histogram()).merge(h));
    mergeTable(this.softirq, o.softirq);
    mergeTable(this.softirqWait, o.softirqWait);
    o.funcs.forEach((row, fn) => row && mergeList((this.funcs[fn] ??= []), row));
    for (const [key, t] of o.timers) {
      let mine = this.timers.get(key);
      if (!mine) this.timers.set(key, (mine = { ...t, perCpu: [] }));
      mergeList(mine.perCpu, t.perCpu);
    }
    mergeList(this.icmpWait, o.icmpWait);
    this.kernel.merge(o.kernel);
    mergeList(this.pauses, o.pauses);
    o.icmpCount.forEach((n, cpu) => (this.icmpCount[cpu] = (this.icmpCount[cpu] ?? 0) + (n ?? 0)));
    o.packetWaitUnknown.forEach((n, cpu) => this.addPacketWaitUnknown(cpu, n ?? 0));
    o.stealNs.forEach((n, cpu) => this.addSteal(cpu, n ?? 0));
    for (const p of o.icmp) {
      if (this.icmp.length < this.maxPackets) this.icmp.push(p);
      else this.icmpNotKept++;
    }
    this.icmpNotKept += o.icmpNotKept;
    this.slowRing.absorb(o.slowRing);
    this.stallRing.absorb(o.stallRing);
    this.receiveRing.absorb(o.receiveRing);
    this.wakeRing.absorb(o.wakeRing);
    this.ownWakeRing.absorb(o.ownWakeRing);
    if (this.series && o.series) this.series.merge(o.series);
    for (const k of Object.keys(this.events) as (keyof Aggregator['events'])[]) this.events[k] += o.events[k];
    if (o.firstNs && (!this.firstNs || o.firstNs < this.firstNs)) this.firstNs = o.firstNs;
    if (o.lastNs > this.lastNs) this.lastNs = o.lastNs;
    return this;
  }
}

/** A WAKE_FLOW record's socket: an IPv4-mapped IPv6 address reads as IPv4, an all-zero peer as none. */
function socketFlow(v: EventView, w: number): SocketFlow {
  const v6 = (v.flags(w) & Flag.IPV6) !== 0;
  const addr = (a: string) => (a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a);
  const peer = addr(v.pktSaddr(w, v6));
  const connected = peer !== '0.0.0.0' && peer !== '::';
  const proto = v.pktProto(w);
  return {
    proto: PROTOCOLS[proto] ?? (`ip-${proto}` as Protocol),
    saddr: connected ? peer : null,
    sport: connected ? v.pktSport(w) : null,
    daddr: addr(v.pktDaddr(w, v6)),
    dport: v.pktDport(w),
  };
}
