// `top` on a terminal: the blessed dashboard. Layout lives here; each panel maps
// a Snapshot to its widget. One render clock (the refresh) for the whole screen.
import { wakeupCostNs } from '../diagnose/wakeup';
import blessed from 'blessed';
import { fmtNs, wallTime } from '../base/format';
import type { CpuSummary, HistogramRow } from '../diagnose/summary';
import { histogramRow } from '../diagnose/summary';
import { flowText } from '../diagnose/verdict';
import { stallEvents } from '../diagnose/attribute';
import { CPU_TABLE_HEAD, cpuCells, cpuCellValues, renderHistogram, stallEventText } from '../report/text';
import { HISTORY_POINTS, Snapshot, WindowName, WINDOWS } from './collector';
import { SPARK_LEGEND, sparkline } from './sparkline';
import { HEADER_ROWS, HELP, HIST_VIEWS, KEYS, severity } from './dashboard-text';

export interface DashboardHandlers {
  quit(): void;
  reset(): void;
  windowChanged(w: WindowName): void;
}

/** blessed's list as it is at run time: its typings leave out the selected index. */
type List = blessed.Widgets.ListElement & { selected: number };
const list = (opts: blessed.Widgets.ListOptions<blessed.Widgets.ListElementStyle>) => blessed.list(opts) as List;

export class Dashboard {
  readonly screen: blessed.Widgets.Screen;
  private readonly header: blessed.Widgets.BoxElement;
  private readonly cpuList: List;
  private readonly sparkBox: blessed.Widgets.BoxElement;
  private readonly histBox: blessed.Widgets.BoxElement;
  private readonly timerList: List;
  private readonly stallList: List;
  private readonly slowList: List;
  private readonly footer: blessed.Widgets.BoxElement;
  private readonly panels: blessed.Widgets.BlessedElement[];
  private help: blessed.Widgets.BoxElement | undefined;
  private last: Snapshot | undefined;
  paused = false;
  window: WindowName = '1s';
  private histCpu: number | null = null;
  private histView = 0;
  private histTimer: { symbol: string; cpu: number } | null = null;

  constructor(
    private readonly handlers: DashboardHandlers,
    private readonly cpuCount: number,
  ) {
    this.screen = blessed.screen({ smartCSR: true, title: 'jitterscope top', fullUnicode: false, autoPadding: true });
    // host and rates, probe modes, and the verdict over the window's slow packets
    this.header = blessed.box({ parent: this.screen, top: 0, left: 0, width: '100%', height: HEADER_ROWS, tags: true });
    const listStyle = { selected: { inverse: true }, border: { fg: 'gray' }, focus: { border: { fg: 'cyan' } } };
    this.cpuList = list({
      parent: this.screen,
      top: HEADER_ROWS,
      left: 0,
      width: '100%',
      height: '30%',
      label: ' CPUs ',
      border: 'line',
      tags: true,
      keys: true,
      vi: true,
      style: listStyle,
    });
    // NET_RX wait per CPU over the last minute, whatever the window
    this.sparkBox = blessed.box({
      parent: this.screen,
      top: '30%',
      left: 0,
      width: '100%',
      height: 4,
      label: ` NET_RX wait, last ${HISTORY_POINTS} s — ${SPARK_LEGEND} `,
      border: 'line',
      tags: false,
      style: listStyle,
    });
    this.histBox = blessed.box({
      parent: this.screen,
      top: '30%+3',
      left: 0,
      width: '50%',
      height: '70%-12',
      label: ' histogram ',
      border: 'line',
      tags: false,
      scrollable: true,
      style: listStyle,
    });
    this.timerList = list({
      parent: this.screen,
      top: '30%+3',
      left: '50%',
      width: '50%',
      height: '70%-12',
      label: ' timer callbacks ',
      border: 'line',
      tags: true,
      keys: true,
      vi: true,
      style: listStyle,
    });
    this.stallList = list({
      parent: this.screen,
      bottom: 1,
      left: 0,
      width: '50%',
      height: 8,
      label: ' recent stalls ',
      border: 'line',
      tags: true,
      keys: true,
      vi: true,
      style: listStyle,
    });
    this.slowList = list({
      parent: this.screen,
      bottom: 1,
      left: '50%',
      width: '50%',
      height: 8,
      label: ' slow packets ',
      border: 'line',
      tags: true,
      keys: true,
      vi: true,
      style: listStyle,
    });
    this.footer = blessed.box({ parent: this.screen, bottom: 0, left: 0, width: '100%', height: 1, content: KEYS, style: { inverse: true } });
    this.panels = [this.cpuList, this.histBox, this.timerList, this.stallList, this.slowList];
    this.cpuList.focus();
    this.bindKeys();
    this.layout();
    this.screen.on('resize', () => {
      this.layout();
      this.draw();
    });
  }

  /** The CPU table gets a row per CPU (up to 40 % of the screen); the middle panels the rest. */
  private layout(): void {
    const rows = (this.screen.height as number) || 24;
    const cpuHeight = Math.max(4, Math.min(this.cpuCount + 2, Math.floor(rows * 0.4)));
    const sparkHeight = Math.max(3, Math.min(this.cpuCount + 2, Math.floor(rows * 0.2)));
    const middleTop = HEADER_ROWS + cpuHeight + sparkHeight;
    const middleHeight = Math.max(4, rows - middleTop - 9);
    this.cpuList.height = cpuHeight;
    this.sparkBox.top = HEADER_ROWS + cpuHeight;
    this.sparkBox.height = sparkHeight;
    for (const p of [this.histBox, this.timerList]) {
      p.top = middleTop;
      p.height = middleHeight;
    }
  }

  private bindKeys(): void {
    const s = this.screen;
    s.key(['q', 'C-c'], () => this.handlers.quit());
    s.key(['escape'], () => (this.help ? this.closeHelp() : this.handlers.quit()));
    s.key(['tab'], () => {
      const i = this.panels.indexOf(s.focused as blessed.Widgets.BlessedElement);
      this.panels[(i + 1) % this.panels.length].focus();
      s.render();
    });
    s.key(['p', 'z'], () => {
      this.paused = !this.paused;
      this.draw();
    });
    s.key(['r'], () => {
      this.handlers.reset();
      this.draw();
    });
    s.key(['w'], () => {
      this.window = WINDOWS[(WINDOWS.indexOf(this.window) + 1) % WINDOWS.length];
      this.handlers.windowChanged(this.window);
    });
    s.key(['?'], () => this.showHelp());
    this.cpuList.key(['enter'], () => {
      const row = this.cpuRows()[this.cpuList.selected];
      if (!row) return;
      this.histCpu = row.cpu;
      this.histTimer = null;
      this.histBox.focus();
      this.draw();
    });
    this.timerList.key(['enter'], () => {
      const t = this.last?.summary.timers.byMax[this.timerList.selected];
      if (!t) return;
      this.histTimer = { symbol: t.symbol, cpu: t.cpu };
      this.draw();
    });
    this.histBox.key(['left', 'h', 'up', 'k'], () => this.stepView(-1));
    this.histBox.key(['right', 'l', 'down', 'j'], () => this.stepView(1));
  }

  private stepView(d: number): void {
    this.histTimer = null;
    this.histView = (this.histView + d + HIST_VIEWS.length) % HIST_VIEWS.length;
    this.draw();
  }

  private showHelp(): void {
    if (this.help) return;
    this.help = blessed.box({
      parent: this.screen,
      top: 'center',
      left: 'center',
      width: 64,
      height: 20,
      border: 'line',
      label: ' help ',
      content: HELP,
      style: { border: { fg: 'cyan' } },
    });
    this.help.focus();
    this.help.once('keypress', () => this.closeHelp());
    this.screen.render();
  }

  private closeHelp(): void {
    this.help?.destroy();
    this.help = undefined;
    this.cpuList.focus();
    this.screen.render();
  }

  private cpuRows(): CpuSummary[] {
    return this.last?.summary.cpus ?? [];
  }

  /** Takes a new snapshot (ignored while paused) and redraws. */
  update(s: Snapshot): void {
    if (!this.paused) this.show(s);
  }

  /** Shows this snapshot even while paused (the user changed the window). */
  show(s: Snapshot): void {
    this.last = s;
    this.draw();
  }

  draw(): void {
    const s = this.last;
    if (!s) {
      this.header.setContent('{bold}jitterscope top{/bold}  attaching...');
      this.screen.render();
      return;
    }
    const modes = Object.entries(s.probes)
      .map(([name, p]) => `${name}: ${p.active ? (p.mode ?? '').split(' ')[0] : '{yellow-fg}inactive{/yellow-fg}'}`)
      .join('  ');
    const drops = s.dropsTotal ? `{red-fg}drops ${s.dropsRecent} (total ${s.dropsTotal}){/red-fg}` : 'drops 0';
    this.header.setContent(
      `{bold}jitterscope top{/bold}  ${s.host}  ${s.kernel}  window ${this.window}  ` +
        `events ${Math.round(s.eventsPerSec).toLocaleString('en-US')}/s  ${drops}` +
        (this.paused ? '  {inverse}{bold} PAUSED {/bold}{/inverse}' : '') +
        `  ${s.takenAt.toTimeString().slice(0, 8)}\n${modes}\n` +
        severity(s.verdict.culprit ? 10e6 : null, s.verdict.text.split('\n')[0]),
    );

    // per-CPU table: align the plain text first, then colour the cells
    const rows = this.cpuRows();
    const cells = rows.map(cpuCells);
    const width = CPU_TABLE_HEAD.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
    const pad = (t: string, i: number) => (i === 0 || i === width.length - 1 ? t.padEnd(width[i]) : t.padStart(width[i]));
    this.cpuList.setLabel(` CPUs — ${CPU_TABLE_HEAD.map(pad).join('  ')} `);
    this.cpuList.setItems(rows.map((r, k) => cells[k].map((c, i) => severity(cpuCellValues(r)[i], pad(c, i))).join('  ')));

    this.sparkBox.setContent(
      s.history
        .filter((h) => rows.some((r) => r.cpu === h.cpu))
        .map((h) => `cpu ${String(h.cpu).padEnd(3)} ${sparkline(h.netRxWaitMaxNs.slice(-HISTORY_POINTS)).padStart(HISTORY_POINTS)}|`)
        .join('\n'),
    );
    this.drawHistogram(s, rows);

    const timers = s.summary.timers.byMax;
    const tw = [32, 4, 8, 9, 9, 9];
    const tcell = (t: string[]) => t.map((c, i) => (i === 0 ? c.slice(0, tw[0]).padEnd(tw[0]) : c.padStart(tw[i]))).join(' ');
    this.timerList.setLabel(` timer callbacks (by max) — ${tcell(['callback', 'CPU', 'count', 'p99', 'max', 'total'])} `);
    this.timerList.setItems(
      timers.map((t) => severity(t.maxNs, tcell([t.symbol, String(t.cpu), String(t.count), fmtNs(t.p99Ns), fmtNs(t.maxNs), fmtNs(t.totalNs)]))),
    );

    const stalls = stallEvents(s.summary.stalls.rows).slice(-200).reverse();
    this.stallList.setLabel(` recent stalls (>= ${fmtNs(s.summary.stalls.thresholdNs)}, newest first) `);
    this.stallList.setItems(
      stalls.map((x) =>
        severity(
          x.durationNs,
          `${wallTime(x.startNs, s.realtimeOffsetNs)}  cpu ${String(x.cpu).padEnd(3)} ${fmtNs(x.durationNs).padStart(8)}  ${stallEventText(x)}`,
        ),
      ),
    );
    // slow packets and receive stalls (NET_RX runs that started late) in one list, newest first
    const waits = [
      ...s.summary.packets.slow.map((p) => ({
        at: p.startNs,
        waitNs: p.waitNs,
        text: `${fmtNs(p.waitNs ?? 0).padStart(7)}  cpu ${String(p.cpu).padEnd(3)} ${flowText(p)}  ${p.attribution ? `<- ${p.attribution.culprit}` : ''}`,
      })),
      ...s.summary.receive.stalls.map((r) => ({
        at: r.raiseNs,
        waitNs: r.waitNs,
        text: `${fmtNs(r.waitNs).padStart(7)}  cpu ${String(r.cpu).padEnd(3)} ${r.napiThread !== null ? 'NAPI thread' : 'NET_RX'} started late${r.deferred ? ' (ksoftirqd)' : ''}  ${r.attribution ? `<- ${r.attribution.culprit}` : ''}`,
      })),
      // tasks woken by receive processing: their wait to run, or the time taken from their run
      ...s.summary.wakeups.slow.map((x) => ({
        at: x.startNs,
        waitNs: wakeupCostNs(x),
        text: `${fmtNs(wakeupCostNs(x)).padStart(7)}  cpu ${String(x.cpu).padEnd(3)} ${x.task} ${x.kind === 'wait' ? 'woke late' : x.kind === 'ready' ? 'awake, data waited' : 'lost its CPU'}  ${x.attribution ? `<- ${x.attribution.culprit}` : ''}`,
      })),
    ]
      .sort((a, b) => b.at - a.at)
      .slice(0, 200);
    this.slowList.setLabel(` slow packets, late NET_RX runs, slow wake-ups (>= ${fmtNs(s.summary.packets.slowThresholdNs)}, newest first) `);
    this.slowList.setItems(waits.map((x) => severity(x.waitNs, x.text)));
    this.screen.render();
  }

  private drawHistogram(s: Snapshot, rows: CpuSummary[]): void {
    let title: string;
    let h: HistogramRow | undefined;
    if (this.histTimer) {
      const t = this.histTimer;
      title = `${t.symbol} on CPU ${t.cpu}`;
      h = rowOf(s, 'timer_callbacks', t.symbol, t.cpu);
    } else {
      const cpu = this.histCpu ?? rows[this.cpuList.selected]?.cpu ?? 0;
      const [label, probe, key] = HIST_VIEWS[this.histView];
      title = `${label} on CPU ${cpu}`;
      h = rowOf(s, probe, key, cpu);
    }
    this.histBox.setLabel(` ${title} (←/→ measure) `);
    if (!h) {
      this.histBox.setContent('no events in this window');
      return;
    }
    const summary = `count ${h.count}  p50 ${fmtNs(h.p50)}  p99 ${fmtNs(h.p99)}  max ${fmtNs(h.max)}`;
    const width = Math.max(10, (this.histBox.width as number) - 36);
    this.histBox.setContent(`${summary}\n${renderHistogram('ns', h.buckets, width).split('\n').slice(1).join('\n')}`);
  }

  destroy(): void {
    this.screen.destroy();
  }
}

/** The histogram row of one probe, key and CPU in a snapshot, made only for the one shown (its buckets and quantiles). */
function rowOf(s: Snapshot, probe: HistogramRow['probe'], key: string | null, cpu: number): HistogramRow | undefined {
  const src = s.summary.histograms.find((x) => x.probe === probe && x.key === key && x.cpu === cpu);
  return src && histogramRow(probe, cpu, key, src.histogram);
}
