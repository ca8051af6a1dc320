// Aggregation of decoded events into per-probe, per-CPU (and per-key)
// histograms, plus the bounded lists that views need: ICMP packets and stalls.
// Runs once per batch in the hot path: no allocation per event except for the
// rare ICMP packet and stall records.

import { Flag, Func, Kind, NR_SOFTIRQS } from '../kernel/abi';
import { EventView, WORDS_PER_EVENT } from './decode';
import { Histogram } from './histogram';

export interface IcmpPacket {
  startNs: number; // arrival (or processing when arrival was not seen), monotonic
  cpu: number; // CPU that processed it (__netif_receive_skb)
  arrivalCpu: number;
  ifindex: number;
  saddr: string;
  daddr: string;
  type: number;
  code: number;
  id: number;
  seq: number;
  waitNs: number | null; // arrival -> processing; null when the arrival was not seen
}

const MAX_FUNC = Math.max(...Object.values(Func));

export type StallKind = 'softirq' | 'timer' | 'hrtimer';

export interface Stall {
  kind: StallKind;
  cpu: number;
  key: number; // softirq vector, or callback address (low 52 bits)
  startNs: number;
  durationNs: number;
}

export interface TimerStats {
  kind: 'timer' | 'hrtimer';
  /** Callback address, low 52 bits. */
  key: number;
  perCpu: (Histogram | undefined)[];
}

export interface AggregatorOptions {
  /** Runs at least this long are kept as stalls (ns). */
  stallThresholdNs?: number;
  maxPackets?: number;
  maxStalls?: number;
}

export class Aggregator {
  readonly softirq: (Histogram | undefined)[][] = [];
  readonly softirqWait: (Histogram | undefined)[][] = [];
  readonly timers = new Map<number, TimerStats>();
  /** Runs of functions traced by fentry/kprobe: [enum js_func][cpu]. */
  readonly funcs: (Histogram | undefined)[][] = [];
  readonly icmpWait: (Histogram | undefined)[] = [];
  readonly icmpCount: number[] = [];
  readonly packets: IcmpPacket[] = [];
  packetsNotKept = 0;
  /** Ring of the newest maxStalls stalls; read them in order with stalls(). */
  private readonly stallRing: Stall[] = [];
  private stallNext = 0;
  stallsNotKept = 0;
  readonly events = { softirq: 0, timer: 0, hrtimer: 0, icmp: 0, func: 0, unknown: 0 };
  firstNs = 0;
  lastNs = 0;

  readonly stallThresholdNs: number;
  readonly maxPackets: number;
  readonly maxStalls: number;
  private view: EventView | undefined;

  constructor(opts: AggregatorOptions = {}) {
    this.stallThresholdNs = opts.stallThresholdNs ?? 1_000_000;
    this.maxPackets = opts.maxPackets ?? 10_000;
    this.maxStalls = opts.maxStalls ?? 10_000;
  }

  /** An empty aggregator with the same options. */
  fresh(): Aggregator {
    return new Aggregator({ stallThresholdNs: this.stallThresholdNs, maxPackets: this.maxPackets, maxStalls: this.maxStalls });
  }

  get totalEvents(): number {
    const e = this.events;
    return e.softirq + e.timer + e.hrtimer + e.icmp + e.func + e.unknown;
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
        (this.cpuRow(this.softirq, cpu)[vec] ??= new Histogram()).record(d);
        if (!(v.flags(w) & Flag.WAIT_UNKNOWN)) {
          const row = this.cpuRow(this.softirqWait, cpu);
          (row[vec] ??= new Histogram()).record(v.softirqWaitNs(w));
        }
        if (d >= this.stallThresholdNs) this.addStall('softirq', cpu, vec, start, d);
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
        if (d >= this.stallThresholdNs) this.addStall(t.kind, cpu, key, start, d);
      } else if (kind === Kind.ICMP) {
        this.events.icmp++;
        this.icmpCount[cpu] = (this.icmpCount[cpu] ?? 0) + 1;
        const unknown = (v.flags(w) & Flag.WAIT_UNKNOWN) !== 0;
        const wait = v.durationNs(w);
        if (!unknown) (this.icmpWait[cpu] ??= new Histogram()).record(wait);
        if (this.packets.length < this.maxPackets) {
          this.packets.push({
            startNs: start,
            cpu,
            arrivalCpu: v.icmpArrivalCpu(w),
            ifindex: v.keyLo(w),
            saddr: v.icmpSaddr(w),
            daddr: v.icmpDaddr(w),
            type: v.icmpType(w),
            code: v.icmpCode(w),
            id: v.icmpId(w),
            seq: v.icmpSeq(w),
            waitNs: unknown ? null : wait,
          });
        } else this.packetsNotKept++;
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

  private cpuRow(table: (Histogram | undefined)[][], cpu: number): (Histogram | undefined)[] {
    return (table[cpu] ??= new Array<Histogram | undefined>(NR_SOFTIRQS));
  }

  private addStall(kind: StallKind, cpu: number, key: number, startNs: number, durationNs: number): void {
    const s: Stall = { kind, cpu, key, startNs, durationNs };
    if (this.stallRing.length < this.maxStalls) this.stallRing.push(s);
    else {
      this.stallRing[this.stallNext] = s;
      this.stallNext = (this.stallNext + 1) % this.maxStalls;
      this.stallsNotKept++;
    }
  }

  /** Kept stalls, oldest first. */
  stalls(): Stall[] {
    return this.stallRing.slice(this.stallNext).concat(this.stallRing.slice(0, this.stallNext));
  }

  /** Folds another aggregator (e.g. an interval) into this one. */
  merge(o: Aggregator): this {
    const mergeTable = (into: (Histogram | undefined)[][], from: (Histogram | undefined)[][]) =>
      from.forEach((row, cpu) =>
        row?.forEach((h, k) => {
          if (h) (this.cpuRow(into, cpu)[k] ??= new Histogram()).merge(h);
        }),
      );
    mergeTable(this.softirq, o.softirq);
    mergeTable(this.softirqWait, o.softirqWait);
    o.funcs.forEach((row, fn) => row?.forEach((h, cpu) => h && ((this.funcs[fn] ??= [])[cpu] ??= new Histogram()).merge(h)));
    for (const [key, t] of o.timers) {
      let mine = this.timers.get(key);
      if (!mine) this.timers.set(key, (mine = { ...t, perCpu: [] }));
      t.perCpu.forEach((h, cpu) => h && (mine!.perCpu[cpu] ??= new Histogram()).merge(h));
    }
    o.icmpWait.forEach((h, cpu) => h && (this.icmpWait[cpu] ??= new Histogram()).merge(h));
    o.icmpCount.forEach((n, cpu) => (this.icmpCount[cpu] = (this.icmpCount[cpu] ?? 0) + (n ?? 0)));
    for (const p of o.packets) {
      if (this.packets.length < this.maxPackets) this.packets.push(p);
      else this.packetsNotKept++;
    }
    this.packetsNotKept += o.packetsNotKept;
    for (const s of o.stalls()) this.addStall(s.kind, s.cpu, s.key, s.startNs, s.durationNs);
    this.stallsNotKept += o.stallsNotKept;
    for (const k of Object.keys(this.events) as (keyof Aggregator['events'])[]) this.events[k] += o.events[k];
    if (o.firstNs && (!this.firstNs || o.firstNs < this.firstNs)) this.firstNs = o.firstNs;
    if (o.lastNs > this.lastNs) this.lastNs = o.lastNs;
    return this;
  }
}
