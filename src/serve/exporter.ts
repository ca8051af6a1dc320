// The exporter's loop and its answers: each second the live trace's interval
// is summarized into the metrics (no report, no verdict, no /sys reads) and
// kept for /report; the HTTP routes read only what the loop made. The command
// (commands/serve.ts) parses options, binds the port, starts the trace and
// hands it here; the site starts answering when the exporter is ready.
import { monotonicNs } from '../base/clock';
import { UsageError } from '../base/errors';
import { summarize, TraceSummary } from '../diagnose/summary';
import { attributeWakeups, WakeupRow } from '../diagnose/wakeup';
import { parseDurationMs } from '../base/options';
import type { ProbeName, ProbeStatus } from '../kernel/probes';
import type { Kallsyms } from '../host/kallsyms';
import type { IpvsState } from '../host/ipvs';
import type { Report } from '../report/model';
import { Aggregator } from '../stream/aggregate';
import { AnsweredAt, answerQuery, ExplainQuery, parseExplainQuery } from '../diagnose/explain';
import { NotServed, RateLimited, Routes } from './http';
import { MeshSink, Metrics } from './metrics';
import type { MeshView } from '../diagnose/mesh';
import { Recent } from './recent';

const TICK_MS = 1000;
/** How far back /explain looks (at most the kept window). */
const EXPLAIN_WINDOW_MS = 120_000;
/**
 * /explain queries answered a second: from one caller (a person's ping, or a
 * peer's mesh prober: a batch a second per protocol), and from all callers
 * together (a node is probed by about k peers). The window is summarized once
 * per interval, however many ask.
 */
const EXPLAIN_PER_CALLER = 20;
const EXPLAIN_PER_SECOND = 200;

export interface ExporterSettings {
  perCpu: boolean;
  topCallbacks: number;
  /** The longest window /report serves, and how it was asked for (for the error). */
  maxWindowMs: number;
  maxWindowText: string;
  version: string;
  /** This node's name, as /explain answers and the mesh hashes it. */
  node: string;
}

/** What the exporter reads from the trace it serves. */
export interface ExporterSource {
  /** Closes the current interval and returns it (LiveTrace.rotate). */
  rotate(): Aggregator;
  drops(): { total: number; perCpu: number[]; badRecords: number; consumeErrors: number };
  probes(): Record<ProbeName, ProbeStatus>;
  kallsyms: Kallsyms | undefined;
  ipvs(): IpvsState;
  /** The full report of an aggregate that began at `fromNs` (verdict, host facts, histogram rows). */
  reportOf(agg: Aggregator, fromNs: number): Report;
}

export class Exporter {
  private readonly metrics: Metrics;
  private readonly recent: Recent;
  private timer: NodeJS.Timeout | undefined;
  /** The window's attributed slow packets as of the interval that ended at atNs (for /explain). */
  private explained: { atNs: number; packets: TraceSummary['packets']; stalls: TraceSummary['stalls']['rows']; ownWakeups: WakeupRow[] } | undefined;
  /** serve --mesh: its UDP responder's record of the peer probes it answered (set by the command). */
  responder: { answeredAt: AnsweredAt; readonly keptSinceNs: number; readonly port: number } | undefined;

  constructor(
    private readonly source: ExporterSource,
    private readonly settings: ExporterSettings,
    private lastNs: number,
  ) {
    this.recent = new Recent(settings.maxWindowMs * 1e6);
    this.metrics = new Metrics(
      { perCpu: settings.perCpu, topCallbacks: settings.topCallbacks },
      { drops: () => source.drops(), probes: () => source.probes(), ipvs: () => source.ipvs(), version: settings.version },
    );
  }

  /** One interval into the metrics and the kept window. */
  tick(): void {
    const agg = this.source.rotate();
    const nowNs = monotonicNs();
    this.metrics.fold(summarize(agg, { probes: this.source.probes(), kallsyms: this.source.kallsyms }));
    this.recent.add(agg, this.lastNs, nowNs);
    this.lastNs = nowNs;
  }

  start(): void {
    this.timer ??= setInterval(() => this.tick(), TICK_MS);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The report JSON of the last `window` (e.g. "60s"). */
  report(window: string): string {
    const ms = parseDurationMs(window, 'window');
    if (ms > this.settings.maxWindowMs) throw new UsageError(`window: ${window} is longer than the ${this.settings.maxWindowText} kept (--report-window)`);
    const got = this.recent.window(ms * 1e6, monotonicNs());
    if (!got) throw new UsageError('window: no interval has finished yet; ask again in a second');
    return JSON.stringify(this.source.reportOf(got.agg, got.startNs)) + '\n';
  }

  private get explainWindowMs(): number {
    return Math.min(EXPLAIN_WINDOW_MS, this.settings.maxWindowMs);
  }

  /** The window's attributed slow packets and its stall rows, summarized once per interval however often asked; null before the first interval. */
  explainedWindow(): { packets: TraceSummary['packets']; stalls: TraceSummary['stalls']['rows']; ownWakeups: WakeupRow[] } | null {
    if (this.explained?.atNs !== this.lastNs) {
      const got = this.recent.window(this.explainWindowMs * 1e6, monotonicNs());
      if (!got) return null;
      const sum = summarize(got.agg, { probes: this.source.probes(), kallsyms: this.source.kallsyms });
      // serve's own threads' slow wake-ups on UDP sockets (the mesh's prober and responder: the only ones read),
      // explained like any other, never reported
      const ownWakeups = attributeWakeups(
        got.agg.ownWakeups().filter((x) => x.flow?.proto === 'udp'),
        sum.stalls.rows,
      );
      this.explained = { atNs: this.lastNs, packets: sum.packets, stalls: sum.stalls.rows, ownWakeups };
    }
    return this.explained;
  }

  /** What the trace saw of a caller's own echo requests (diagnose/explain.ts), as JSON. */
  explain(q: ExplainQuery): string {
    const w = this.explainedWindow();
    if (!w) throw new UsageError('no interval has finished yet; ask again in a second');
    const r = this.responder;
    const responder = r && { answeredAt: r.answeredAt, keptSinceNs: r.keptSinceNs, nowNs: monotonicNs(), port: r.port, ownWakeups: w.ownWakeups };
    return JSON.stringify(answerQuery(q, w.packets, this.settings.node, this.explainWindowMs, w.stalls, responder)) + '\n';
  }

  /** The metrics' mesh families (serve --mesh). */
  meshSink(view: () => MeshView): MeshSink {
    return this.metrics.enableMesh(view);
  }

  async metricsText(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.metrics.contentType, body: await this.metrics.text() };
  }
}

/**
 * The HTTP routes over the exporter being served, if any: bound before
 * tracing starts (a taken port fails first), they answer "not tracing" until
 * serve(exporter) and after stop().
 */
export class Site implements Routes {
  private exporter: Exporter | undefined;
  private meshView: (() => MeshView) | undefined;
  /** /explain's budget this second: queries left per caller, and in all; which second. */
  private explainLeft = new Map<string, number>();
  private explainAll = 0;
  private explainSecond = 0;

  serve(exporter: Exporter, mesh?: () => MeshView): void {
    this.exporter = exporter;
    this.meshView = mesh;
  }

  stop(): void {
    this.exporter = undefined;
    this.meshView = undefined;
  }

  mesh(): string {
    if (!this.exporter) throw new UsageError('not tracing yet');
    if (!this.meshView) throw new NotServed('this serve runs without --mesh: no peers are probed');
    return JSON.stringify(this.meshView()) + '\n';
  }

  async metrics() {
    return this.exporter ? this.exporter.metricsText() : null;
  }

  report(window: string): string {
    if (!this.exporter) throw new UsageError('not tracing yet');
    return this.exporter.report(window);
  }

  explain(params: URLSearchParams, caller: string): string {
    if (!this.exporter) throw new UsageError('not tracing yet');
    // checked before it costs the budget: a bad or foreign query cannot starve the others
    const q = parseExplainQuery(params, caller);
    const second = Math.floor(Date.now() / 1000);
    if (second !== this.explainSecond) {
      this.explainSecond = second;
      this.explainLeft.clear();
      this.explainAll = 0;
    }
    const left = this.explainLeft.get(q.source) ?? EXPLAIN_PER_CALLER;
    if (left <= 0) throw new RateLimited(`more than ${EXPLAIN_PER_CALLER} /explain queries from ${q.source} this second; ask again in a second`);
    if (this.explainAll >= EXPLAIN_PER_SECOND) throw new RateLimited(`more than ${EXPLAIN_PER_SECOND} /explain queries this second; ask again in a second`);
    // the map holds this second's callers only (cleared each second)
    this.explainLeft.set(q.source, left - 1);
    this.explainAll++;
    return this.exporter.explain(q);
  }

  healthy(): boolean {
    return this.exporter !== undefined;
  }
}
