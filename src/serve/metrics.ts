// The exporter's metrics: every interval's summary (diagnose/summary.ts) folded
// into cumulative Prometheus series, served through prom-client's registry.
// Histograms arrive already bucketed, so they are exposed as precomputed
// histograms instead of observed value by value. Buckets are powers of two
// nanoseconds, 1.024 µs to 2.15 s, then +Inf. Both sources nest in them, so
// nothing is re-binned: a streamed histogram's power-of-two buckets, and the
// kernel's own (four per power of two), read straight from its counts.
import type * as PromClient from 'prom-client';
import type { ProbeStatus } from '../kernel/probes';
import { HistogramSource, TraceSummary } from '../diagnose/summary';
import { stallEvents } from '../diagnose/attribute';
import { kernelBucketBounds } from '../stream/kernel-histogram';
import { MeshView, PEER_STATES, ProbeOutcome } from '../diagnose/mesh';
import { STALL_KINDS } from '../stream/records';

/** Bucket bounds: 2^10 .. 2^31 ns. */
const FIRST_EXP = 10;
const LAST_EXP = 31;
const BOUNDS_NS = Array.from({ length: LAST_EXP - FIRST_EXP + 1 }, (_, i) => 2 ** (FIRST_EXP + i));
/*
 * prom-client's registry, counter and gauge, required one by one: its index
 * also loads the default process metrics, the push gateway and the cluster
 * aggregator, which pull in @opentelemetry and ~80 modules that serve never
 * uses (+13 MB of the node binary's pages and +7 MB of heap on Node 24,
 * against +3 MB this way; measured with /proc/self/status).
 */
/* eslint-disable @typescript-eslint/no-require-imports -- the three modules alone, as said above */
const client = {
  Registry: require('prom-client/lib/registry') as typeof PromClient.Registry,
  Counter: require('prom-client/lib/counter') as typeof PromClient.Counter,
  Gauge: require('prom-client/lib/gauge') as typeof PromClient.Gauge,
};
/* eslint-enable @typescript-eslint/no-require-imports */
type Counter = PromClient.Counter<string>;

/** The culprit label of slow packets and stalls past an interval's listing (see serve's maxPackets). */
export const NOT_LISTED = 'not_listed';

const LE = BOUNDS_NS.map((ns) => String(ns / 1e9));

type Labels = Record<string, string>;

/** One precomputed histogram series: per-bucket (not cumulative) counts, the +Inf bucket last. */
interface Series {
  labels: Labels;
  counts: Float64Array;
  sumNs: number;
  count: number;
}

/** A histogram family that prom-client's registry can print: it only needs get(). */
export class BucketedHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, Series>();

  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  private at(labels: Labels): Series {
    const key = JSON.stringify(labels);
    let s = this.series.get(key);
    if (!s) this.series.set(key, (s = { labels, counts: new Float64Array(BOUNDS_NS.length + 1), sumNs: 0, count: 0 }));
    return s;
  }

  add(labels: Labels, src: HistogramSource): void {
    const s = this.at(labels);
    // a bucket [lo, hi) of either kind lies wholly under the first bound >= hi
    const put = (hi: number, n: number) => {
      const i = BOUNDS_NS.findIndex((ns) => hi <= ns);
      s.counts[i < 0 ? BOUNDS_NS.length : i] += n;
    };
    if (src.streamed) {
      for (const b of src.streamed.log2Buckets()) put(b.hi, b.count);
      s.sumNs += src.streamed.sum;
      s.count += src.streamed.count;
    }
    if (src.kernel) {
      src.kernel.buckets.forEach((n, i) => n && put(kernelBucketBounds(i)[1], n));
      s.sumNs += src.kernel.sumNs;
      s.count += src.kernel.count;
    }
  }

  /** One value (ns), in the first bucket whose bound holds it. */
  observe(labels: Labels, ns: number): void {
    const s = this.at(labels);
    const i = BOUNDS_NS.findIndex((b) => ns <= b);
    s.counts[i < 0 ? BOUNDS_NS.length : i]++;
    s.sumNs += ns;
    s.count++;
  }

  /** Drops a series (a peer no longer probed). */
  remove(labels: Labels): void {
    this.series.delete(JSON.stringify(labels));
  }

  /** Makes a series exist (at zero) so a family is never empty and rules can see it. */
  touch(labels: Labels): void {
    this.at(labels);
  }

  get() {
    const values: { labels: Labels; value: number; metricName: string }[] = [];
    for (const s of this.series.values()) {
      let cum = 0;
      for (let i = 0; i < BOUNDS_NS.length; i++) {
        cum += s.counts[i];
        values.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le: LE[i] }, value: cum });
      }
      values.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le: '+Inf' }, value: s.count });
      values.push({ metricName: `${this.name}_sum`, labels: s.labels, value: s.sumNs / 1e9 });
      values.push({ metricName: `${this.name}_count`, labels: s.labels, value: s.count });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}

/** Where the mesh's probes are counted (Metrics.enableMesh). */
export interface MeshSink {
  reply(peer: string, rttMs: number): void;
  lost(peer: string): void;
  slow(peer: string, o: ProbeOutcome): void;
  /** A newly chosen peer's series exist from now, at zero. */
  touch(peer: string): void;
  /** A peer no longer probed: its series go. */
  forget(peer: string): void;
}

export interface MetricsOptions {
  perCpu: boolean;
  /** Timer callbacks with a series of their own; the rest are function="other". */
  topCallbacks: number;
}

/** Facts read at scrape time rather than folded per interval. */
export interface LiveFacts {
  /** Ring-full drops, and records the ring reader lost (undecodable, failed reads). */
  drops(): { total: number; badRecords: number; consumeErrors: number };
  probes(): Record<string, ProbeStatus>;
  ipvs(): { services: number | null; destinations: number | null; runEstimation: number | null; estimator: string; loaded: boolean };
  version: string;
}

/** Culprit labels beyond this many distinct values are counted as "other". */
const MAX_CULPRITS = 50;

export class Metrics {
  readonly registry = new client.Registry();
  private readonly netRxWait = new BucketedHistogram('jitterscope_net_rx_wait_seconds', 'Time from NET_RX softirq raise to its run');
  private readonly netRxRun = new BucketedHistogram(
    'jitterscope_net_rx_action_seconds',
    'Run time of net_rx_action (or the NET_RX softirq where it is not traced directly)',
  );
  private readonly softirq = new BucketedHistogram('jitterscope_softirq_seconds', 'Run time of softirq handlers, by vector');
  private readonly estimation = new BucketedHistogram('jitterscope_estimation_timer_seconds', "Run time of IPVS's estimation_timer (kernels before 6.2)");
  private readonly packetWait = new BucketedHistogram(
    'jitterscope_packet_wait_seconds',
    'Packets processed in a NET_RX run that started at least --packet-ms after its raise, by the time since that raise (an upper bound of their wait); other packets are not timed by serve',
  );
  private readonly pauses = new BucketedHistogram(
    'jitterscope_pause_seconds',
    'How long a CPU took no timer interrupt, pauses of at least --stall-ms (a hard hrtimer fired that late: the host did not run the vCPU, or interrupts were off)',
  );
  private readonly wakeupWait = new BucketedHistogram(
    'jitterscope_wakeup_wait_seconds',
    'Tasks woken inside a NET_RX run (data or room on their sockets): the wait from the wake-up to running, every one, counted in the kernel',
  );
  private readonly callbacks = new BucketedHistogram(
    'jitterscope_timer_callback_seconds',
    'Run time of timer and hrtimer callbacks, by function (top N by total time, then "other")',
  );
  private readonly stalls: Counter;
  private readonly slowPackets: Counter;
  private readonly receiveStalls: Counter;
  private readonly slowWakeups: Counter;
  private readonly cpuSlowEvents: Counter;
  /** Callbacks that have a series of their own (kept once given, so counters never move between series). */
  private readonly namedCallbacks = new Set<string>();
  private readonly callbackTotals = new Map<string, number>();
  private readonly culprits = new Set<string>();

  constructor(
    private readonly opts: MetricsOptions,
    facts: LiveFacts,
  ) {
    const r = this.registry;
    for (const h of [this.netRxWait, this.netRxRun, this.softirq, this.estimation, this.packetWait, this.pauses, this.wakeupWait, this.callbacks])
      r.registerMetric(h as unknown as PromClient.Metric);
    this.stalls = new client.Counter({
      name: 'jitterscope_stalls_total',
      help: 'Softirq and timer runs at least --stall-ms long, by culprit (a callback counts once, not again for its softirq; "not_listed": past the 1,000 a second that are attributed)',
      labelNames: ['culprit', 'kind'],
      registers: [r],
    });
    this.slowPackets = new client.Counter({
      name: 'jitterscope_slow_packets_total',
      help: 'Packets that waited at least --packet-ms, by the run that explains the wait ("unexplained" if none; "not_listed": past the 1,000 a second that are attributed)',
      labelNames: ['culprit'],
      registers: [r],
    });
    this.receiveStalls = new client.Counter({
      name: 'jitterscope_receive_stalls_total',
      help: 'NET_RX runs that started at least --packet-ms after they were raised (packets waited in a NIC ring or backlog meanwhile), by what held the CPU ("unexplained" if nothing did; "not_listed": past the 1,000 a second that are attributed)',
      labelNames: ['culprit', 'kind'],
      registers: [r],
    });
    this.slowWakeups = new client.Counter({
      name: 'jitterscope_slow_wakeups_total',
      help: 'Tasks woken by receive processing that waited at least --packet-ms to run (type="wait"), tasks already awake whose socket data waited that long for them to run (type="ready"), or tasks that lost that much of their run to softirqs (type="stolen"), by what held the CPU ("unexplained" if nothing did; "not_listed": past the 1,000 a second that are attributed)',
      labelNames: ['culprit', 'kind', 'type'],
      registers: [r],
    });
    this.cpuSlowEvents = new client.Counter({
      name: 'jitterscope_cpu_slow_events_total',
      help: 'Stalls, slow packets and late NET_RX runs per CPU (always per CPU, to find the hot CPU without --per-cpu)',
      labelNames: ['cpu'],
      registers: [r],
    });
    new client.Counter({
      name: 'jitterscope_ring_drops_total',
      help: 'Events lost because the ring buffer was full',
      registers: [r],
      collect() {
        this.reset();
        this.inc(facts.drops().total);
      },
    });
    new client.Counter({
      name: 'jitterscope_ring_bad_records_total',
      help: 'Ring records the reader could not decode (short, or of an unknown size)',
      registers: [r],
      collect() {
        this.reset();
        this.inc(facts.drops().badRecords);
      },
    });
    new client.Counter({
      name: 'jitterscope_ring_read_errors_total',
      help: 'Ring buffer reads that failed (events may be missing)',
      registers: [r],
      collect() {
        this.reset();
        this.inc(facts.drops().consumeErrors);
      },
    });
    new client.Gauge({
      name: 'jitterscope_probe_info',
      help: 'How each probe is attached (1 for the current state)',
      labelNames: ['probe', 'via', 'mode', 'active'],
      registers: [r],
      collect() {
        this.reset();
        for (const [probe, p] of Object.entries(facts.probes())) this.set({ probe, via: p.via ?? 'none', mode: p.mode ?? 'none', active: String(p.active) }, 1);
      },
    });
    const ipvsGauge = (name: string, help: string, pick: (s: ReturnType<LiveFacts['ipvs']>) => number | null) =>
      new client.Gauge({
        name,
        help,
        registers: [r],
        collect() {
          const v = pick(facts.ipvs());
          this.reset();
          if (v !== null) this.set(v);
        },
      });
    ipvsGauge('jitterscope_ipvs_services', 'IPVS virtual services (absent when ip_vs is not loaded)', (s) => s.services);
    ipvsGauge('jitterscope_ipvs_destinations', 'IPVS real servers', (s) => s.destinations);
    ipvsGauge('jitterscope_ipvs_run_estimation', 'net.ipv4.vs.run_estimation (1: the estimator runs)', (s) => s.runEstimation);
    new client.Gauge({
      name: 'jitterscope_ipvs_info',
      help: 'IPVS state: loaded, and which estimator the kernel has (timer: estimation_timer in TIMER softirq; kthread: 6.2+)',
      labelNames: ['loaded', 'estimator'],
      registers: [r],
      collect() {
        const s = facts.ipvs();
        this.reset();
        this.set({ loaded: String(s.loaded), estimator: s.estimator }, 1);
      },
    });
    new client.Gauge({
      name: 'jitterscope_build_info',
      help: 'The running jitterscope',
      labelNames: ['version'],
      registers: [r],
      collect() {
        this.set({ version: facts.version }, 1);
      },
    });
    // families exist from the first scrape on
    for (const h of [this.netRxWait, this.netRxRun, this.estimation, this.packetWait, this.pauses, this.wakeupWait]) h.touch({});
  }

  /** Folds one interval's summary in. */
  fold(r: TraceSummary): void {
    const perCpu = this.opts.perCpu;
    const cpuLabel = (h: HistogramSource): Labels => (perCpu ? { cpu: String(h.cpu) } : {});
    for (const h of r.histograms) {
      if (h.probe === 'net_rx_wait') this.netRxWait.add(cpuLabel(h), h);
      else if (h.probe === 'net_rx_action') this.netRxRun.add(cpuLabel(h), h);
      else if (h.probe === 'softirq') this.softirq.add({ ...cpuLabel(h), vector: h.key ?? '' }, h);
      else if (h.probe === 'ipvs_estimation') this.estimation.add(cpuLabel(h), h);
      else if (h.probe === 'packet_wait') this.packetWait.add(cpuLabel(h), h);
      else if (h.probe === 'pause') this.pauses.add(cpuLabel(h), h);
      else if (h.probe === 'wakeup') this.wakeupWait.add(cpuLabel(h), h);
    }
    this.foldCallbacks(r, perCpu);
    for (const e of stallEvents(r.stalls.rows)) {
      this.stalls.inc({ culprit: this.culprit(e.culprit), kind: e.kind });
      this.cpuSlowEvents.inc({ cpu: String(e.cpu) });
    }
    for (const p of r.packets.slow) {
      this.slowPackets.inc({ culprit: p.attribution ? this.culprit(p.attribution.culprit) : 'unexplained' });
      this.cpuSlowEvents.inc({ cpu: String(p.cpu) });
    }
    for (const x of r.receive?.stalls ?? []) {
      this.receiveStalls.inc(
        x.attribution ? { culprit: this.culprit(x.attribution.culprit), kind: x.attribution.kind } : { culprit: 'unexplained', kind: 'none' },
      );
      this.cpuSlowEvents.inc({ cpu: String(x.cpu) });
    }
    if (r.receive?.notKept) this.receiveStalls.inc({ culprit: NOT_LISTED, kind: 'any' }, r.receive.notKept);
    for (const x of r.wakeups.slow) {
      this.slowWakeups.inc(
        x.attribution
          ? { culprit: this.culprit(x.attribution.culprit), kind: x.attribution.kind, type: x.kind }
          : { culprit: 'unexplained', kind: 'none', type: x.kind },
      );
      this.cpuSlowEvents.inc({ cpu: String(x.cpu) });
    }
    if (r.wakeups.notKept) this.slowWakeups.inc({ culprit: NOT_LISTED, kind: 'any', type: 'any' }, r.wakeups.notKept);
    // past the per-interval listing (a flood where every packet is slow): counted, not attributed
    if (r.packets.slowNotKept) this.slowPackets.inc({ culprit: NOT_LISTED }, r.packets.slowNotKept);
    if (r.stalls.notKept) this.stalls.inc({ culprit: NOT_LISTED, kind: 'any' }, r.stalls.notKept);
  }

  private foldCallbacks(r: TraceSummary, perCpu: boolean): void {
    const rows = r.histograms.filter((h) => h.probe === 'timer_callbacks');
    for (const h of rows) this.callbackTotals.set(h.key!, (this.callbackTotals.get(h.key!) ?? 0) + (h.streamed?.sum ?? 0));
    // the top N by total time so far get (and keep) a series; at most 2N ever
    const top = [...this.callbackTotals.entries()].sort((a, b) => b[1] - a[1]).slice(0, this.opts.topCallbacks);
    for (const [fn] of top) if (this.namedCallbacks.size < 2 * this.opts.topCallbacks) this.namedCallbacks.add(fn);
    const kindOf = new Map(r.timers.byMax.concat(r.timers.byTotal).map((t) => [t.symbol, t.kind]));
    for (const h of rows) {
      const named = this.namedCallbacks.has(h.key!);
      const labels: Labels = {
        ...(perCpu ? { cpu: String(h.cpu) } : {}),
        function: named ? h.key! : 'other',
        kind: named ? (kindOf.get(h.key!) ?? 'timer') : 'mixed',
      };
      this.callbacks.add(labels, h);
    }
  }

  /**
   * serve --mesh: the probes' families, series for the chosen peers only (a
   * peer no longer probed loses its series); `view` is read at each scrape for
   * the peers' states. The peers' culprits have their own limit of names, and
   * a kind the engine does not make is "other": a peer cannot grow these.
   */
  enableMesh(view: () => MeshView): MeshSink {
    const r = this.registry;
    const rtt = new BucketedHistogram(
      'jitterscope_mesh_rtt_seconds',
      'Round trip of the mesh probes (ICMP echo and UDP to its responder) to each peer this node probes',
    );
    r.registerMetric(rtt as unknown as PromClient.Metric);
    const sent = new client.Counter({
      name: 'jitterscope_mesh_probes_total',
      help: 'Mesh probes answered or lost, by peer',
      labelNames: ['peer'],
      registers: [r],
    });
    const lost = new client.Counter({
      name: 'jitterscope_mesh_lost_probes_total',
      help: 'Mesh probes with no reply within 2 s, by peer',
      labelNames: ['peer'],
      registers: [r],
    });
    const slow = new client.Counter({
      name: 'jitterscope_mesh_slow_probes_total',
      help: 'Mesh probes at least --mesh-slow-ms, by protocol (icmp: answered in the peer\'s receive softirq; udp: by its responder thread, whose wake-up is in the round trip), where they were held (side: peer, here, between the two kernels, or unknown when the peer did not answer) and what held them there ("unexplained": it waited and nothing held the CPU; "none": between or unknown)',
      labelNames: ['peer', 'proto', 'side', 'culprit', 'kind'],
      registers: [r],
    });
    new client.Gauge({
      name: 'jitterscope_mesh_peer_state',
      help: "Each probed peer's state as its ICMP probes see it (1 for the current one): probing, answered, no-answer (its serve did not answer), refused, not-jitterscope, ping-failed",
      labelNames: ['peer', 'state'],
      registers: [r],
      collect() {
        this.reset();
        for (const p of view().peers) for (const state of PEER_STATES) this.set({ peer: p.name, state }, p.state === state ? 1 : 0);
      },
    });
    const culprits = new Set<string>();
    const culprit = (name: string) => (culprits.has(name) || (culprits.size < MAX_CULPRITS && culprits.add(name)) ? name : 'other');
    const kinds = new Set<string>(STALL_KINDS);
    const slowLabels = new Map<string, Set<string>>();
    return {
      reply: (peer, rttMs) => {
        sent.inc({ peer });
        rtt.observe({ peer }, rttMs * 1e6);
      },
      lost: (peer) => {
        sent.inc({ peer });
        lost.inc({ peer });
      },
      slow: (peer, o) => {
        const labels = {
          peer,
          proto: o.proto,
          side: o.side,
          culprit: o.culprit ? culprit(o.culprit) : 'none',
          kind: o.kind === null ? 'none' : kinds.has(o.kind) ? o.kind : 'other',
        };
        slow.inc(labels);
        let seen = slowLabels.get(peer);
        if (!seen) slowLabels.set(peer, (seen = new Set()));
        seen.add(JSON.stringify(labels));
      },
      touch: (peer) => {
        rtt.touch({ peer });
        sent.inc({ peer }, 0);
        lost.inc({ peer }, 0);
      },
      forget: (peer) => {
        rtt.remove({ peer });
        sent.remove({ peer });
        lost.remove({ peer });
        for (const l of slowLabels.get(peer) ?? []) slow.remove(JSON.parse(l));
        slowLabels.delete(peer);
      },
    };
  }

  private culprit(name: string): string {
    if (this.culprits.has(name)) return name;
    if (this.culprits.size >= MAX_CULPRITS) return 'other';
    this.culprits.add(name);
    return name;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
