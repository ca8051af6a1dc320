// The HTML report's own script: turns the page's data (report/html.ts's
// pageData, in a <script id="data"> element) into charts. Runs in the browser,
// as an inline module after Chart.js and its matrix plugin (inlined from
// node_modules as globals). Compiled alone by tsconfig.page.json (DOM, no
// Node); report/html.ts reads the output and inlines it.
import type { PageData } from './data';

/** The part of Chart.js this page uses: a chart on a canvas from a configuration. */
declare const Chart: {
  new (canvas: HTMLCanvasElement, config: object): unknown;
  defaults: { animation: boolean; font: { size: number } };
};

interface Area {
  width: number;
  height: number;
}
/** What Chart.js hands a scriptable option or a tooltip callback. */
interface Context<R> {
  raw: R;
  chart: { chartArea?: Area };
}
type Stall = PageData['stalls'][number];
type Point = {
  x: number;
  y: number;
  s?: Stall;
  p?: PageData['slowPackets'][number];
  r?: PageData['replies'][number];
  k?: PageData['wakeups'][number];
  w?: PageData['receiveStalls'][number];
};

const canvas = (id: string) => document.getElementById(id) as HTMLCanvasElement;
const D = JSON.parse(document.getElementById('data')!.textContent ?? '{}') as PageData;
Chart.defaults.animation = false;
Chart.defaults.font.size = 11;

// one tick per CPU, between grid lines that separate the CPUs
const yCpu = {
  type: 'linear',
  min: Math.min(...D.cpus, 0) - 0.5,
  max: Math.max(...D.cpus, 0) + 0.5,
  reverse: true,
  afterBuildTicks: (axis: { ticks: { value: number }[] }) => {
    axis.ticks = D.cpus.map((value) => ({ value }));
  },
  ticks: { callback: (v: number) => 'CPU ' + v },
  grid: { offset: false },
};
const xTime = { type: 'linear', min: 0, max: Math.max(D.durationS, 1), title: { display: true, text: 'seconds since start' } };
const fmtMs = (ms: number) => (ms >= 1 ? ms.toFixed(1) + ' ms' : (ms * 1000).toFixed(0) + ' µs');

// NET_RX wait: 10 µs (pale) .. 100 ms and more (dark red), on a log scale
const heatColour = (ms: number) => {
  const t = Math.max(0, Math.min(1, Math.log10(Math.max(ms, 0.01) / 0.01) / 4));
  return 'hsl(' + Math.round(55 - 55 * t) + ', 95%, ' + Math.round(75 - 40 * t) + '%)';
};
type Cell = PageData['heat'][number];
if (D.heat.length) {
  new Chart(canvas('heatmap'), {
    type: 'matrix',
    data: {
      datasets: [
        {
          data: D.heat,
          backgroundColor: (c: Context<Cell>) => heatColour(c.raw.v),
          width: (c: Context<Cell>) => {
            const a = c.chart.chartArea;
            return a ? Math.max(1, (a.width * (D.intervalS ?? 1)) / xTime.max - 1) : 0;
          },
          height: (c: Context<Cell>) => {
            const a = c.chart.chartArea;
            return a ? Math.max(1, a.height / (yCpu.max - yCpu.min) - 2) : 0;
          },
        },
      ],
    },
    options: {
      maintainAspectRatio: false,
      scales: { x: xTime, y: yCpu },
      plugins: {
        legend: { display: false },
        tooltip: { callbacks: { label: (c: Context<Cell>) => 'CPU ' + c.raw.y + ' at ' + c.raw.x.toFixed(1) + ' s: NET_RX wait max ' + fmtMs(c.raw.v) } },
      },
    },
  });
} else
  document
    .getElementById('heatmap-box')!
    .insertAdjacentHTML('beforeend', '<p class="empty">No NET_RX waits in this report (older report, or no received packets).</p>');

/** A bar from `t` for `ms` at height `y`, then a gap (NaN) before the next. */
const bar = (t: number, ms: number, y: number, tag: Partial<Point>): Point[] => [
  { x: t, y, ...tag },
  { x: t + ms / 1000, y, ...tag },
  { x: t + ms / 1000, y: NaN },
];

// stalls as segments per CPU, coloured by culprit; slow packets and ping replies as marks beside them
const palette = ['#d62728', '#1f77b4', '#9467bd', '#ff7f0e', '#17becf', '#8c564b'];
const culprits = [...new Set(D.stalls.map((s) => s.culprit))];
const stallLine = { type: 'line', borderWidth: 9, borderCapStyle: 'round', pointRadius: 0, spanGaps: false, parsing: false };
const datasets: object[] = culprits.slice(0, palette.length).map((name, i) => ({
  ...stallLine,
  label: 'stall: ' + name,
  borderColor: palette[i],
  backgroundColor: palette[i],
  order: 2,
  data: D.stalls.filter((s) => s.culprit === name).flatMap((s) => bar(s.t, s.ms, s.cpu, { s })),
}));
const others = D.stalls.filter((s) => culprits.indexOf(s.culprit) >= palette.length);
if (others.length) datasets.push({ ...stallLine, label: 'stall: other', borderColor: '#999', data: others.flatMap((s) => bar(s.t, s.ms, s.cpu, { s })) });
const thinBar = { type: 'line', borderWidth: 2, pointRadius: 0, spanGaps: false, parsing: false, order: 1 };
if (D.slowPackets.length)
  datasets.push({
    type: 'scatter',
    label: 'slow packet',
    pointStyle: 'triangle',
    pointRadius: 4,
    backgroundColor: '#000',
    order: 1,
    data: D.slowPackets.map((p) => ({ x: p.t, y: p.cpu + 0.25, p })),
  });
// a late NET_RX run: a thin bar from its raise to its start, just above the CPU's line
if (D.receiveStalls.length)
  datasets.push({
    ...thinBar,
    label: 'NET_RX waiting (late run)',
    borderColor: '#000',
    data: D.receiveStalls.flatMap((w) => bar(w.t, w.waitMs, w.cpu + 0.15, { w })),
  });
// a task woken by receive processing: a thin bar over its wait to run (or its run that lost time), just below the CPU's line
if (D.wakeups.length)
  datasets.push({
    ...thinBar,
    label: 'slow wake-up / data waiting / stolen run',
    borderColor: '#d62728',
    data: D.wakeups.flatMap((k) => bar(k.t, k.ms, k.cpu - 0.15, { k })),
  });
const replies = D.replies.filter((r) => r.cpu !== null);
if (replies.length) {
  const at = (r: (typeof replies)[number]) => ({ x: r.t, y: r.cpu! - 0.25, r });
  datasets.push({ type: 'scatter', label: 'ping reply', pointRadius: 1.5, backgroundColor: '#2ca02c', order: 1, data: replies.filter((r) => !r.slow).map(at) });
  datasets.push({
    type: 'scatter',
    label: 'slow ping reply',
    pointStyle: 'triangle',
    pointRadius: 4,
    backgroundColor: '#e377c2',
    order: 1,
    data: replies.filter((r) => r.slow).map(at),
  });
}
const label = (c: Context<Point>): string => {
  const o = c.raw;
  if (o.s) return o.s.culprit + ' on CPU ' + o.s.cpu + ': ' + fmtMs(o.s.ms) + ' at ' + o.s.t.toFixed(3) + ' s';
  if (o.p) return o.p.flow + ' waited ' + (o.p.waitMs === null ? '?' : fmtMs(o.p.waitMs)) + (o.p.culprit ? ' — ' + o.p.culprit : '');
  if (o.r) return 'reply ' + o.r.seq + ': ' + (o.r.rttMs === null ? '?' : fmtMs(o.r.rttMs));
  if (o.k) return o.k.text;
  if (o.w)
    return (
      (o.w.thread ? 'NAPI thread waited ' : 'NET_RX waited ') +
      fmtMs(o.w.waitMs) +
      (o.w.deferred ? ' (ksoftirqd)' : '') +
      (o.w.culprit ? ' — ' + o.w.culprit : '')
    );
  return '';
};
new Chart(canvas('timeline'), {
  type: 'scatter',
  data: { datasets },
  options: { maintainAspectRatio: false, scales: { x: xTime, y: yCpu }, plugins: { tooltip: { callbacks: { label } } } },
});

// histograms: one dataset per CPU over power-of-two buckets
const bound = (v: number) => (v >= 1e6 ? +(v / 1e6).toPrecision(3) + ' ms' : v >= 1e3 ? +(v / 1e3).toPrecision(3) + ' µs' : v + ' ns');
const histChart = (id: string, rows: PageData['netRxWait'], title: string) => {
  const box = document.getElementById(id + '-box')!;
  if (!rows.length) {
    box.insertAdjacentHTML('beforeend', '<p class="empty">Nothing measured.</p>');
    return;
  }
  const los = [...new Set(rows.flatMap((r) => r.buckets.map((b) => b.lo)))].sort((a, b) => a - b);
  new Chart(canvas(id), {
    type: 'bar',
    data: {
      labels: los.map(bound),
      datasets: rows.map((r, i) => ({
        label: 'CPU ' + r.cpu,
        backgroundColor: palette[i % palette.length],
        data: los.map((lo) => (r.buckets.find((b) => b.lo === lo) ?? { count: 0 }).count),
      })),
    },
    options: {
      maintainAspectRatio: false,
      scales: { y: { type: 'logarithmic', title: { display: true, text: 'count' } }, x: { title: { display: true, text: title } } },
    },
  });
};
histChart('netrx', D.netRxWait, 'NET_RX wait (bucket from)');
histChart('culprit', D.culpritRuns, (D.culprit ?? 'culprit') + ' run time (bucket from)');
document.body.dataset.rendered = String(performance.now());
