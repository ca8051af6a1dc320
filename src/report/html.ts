// The report as one self-contained HTML file: the verdict, a CPU x time heat
// map of NET_RX wait, a timeline of stalls per CPU with the slow packets and
// ping replies on it, per-CPU histograms, the callbacks table, probes, drops
// and notes. Charts are drawn by Chart.js (and its matrix plugin for the heat
// map), inlined from node_modules: the page fetches nothing, and its
// Content-Security-Policy forbids it to.
import { wakeupText } from '../diagnose/wakeup';
import fs from 'node:fs';
import path from 'node:path';
import { fmtNs } from '../base/format';
import { flowText } from '../diagnose/verdict';
import { Report, PingReport } from './model';
import { stallEvents } from '../diagnose/attribute';

/** The plotting code, read once from the installed packages. */
function libraries(): string {
  // the browser builds sit beside each package's main file (their "exports" do not list them)
  const read = (pkg: string, file: string) => fs.readFileSync(path.join(path.dirname(require.resolve(pkg)), file), 'utf8');
  return [read('chart.js', 'chart.umd.min.js'), read('chartjs-chart-matrix', 'chartjs-chart-matrix.min.js')].join('\n');
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** JSON that is safe inside a <script> element. */
const scriptJson = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c');

/** Seconds from the start of the trace. */
function secondsFrom(r: Report) {
  const t0 = r.meta.clock.startNs;
  const wall0 = Date.parse(r.meta.startTime);
  return { mono: (ns: number) => (ns - t0) / 1e9, wall: (iso: string) => (Date.parse(iso) - wall0) / 1000 };
}

/** What the page script draws, in seconds and milliseconds. */
export function pageData(r: Report) {
  const at = secondsFrom(r);
  const ping = (r as PingReport).ping;
  const s = r.series;
  const cpuSet = new Set<number>(r.cpus.map((c) => c.cpu));
  s?.cpus.forEach((c) => cpuSet.add(c.cpu));
  const heat: { x: number; y: number; v: number }[] = [];
  if (s) {
    const x0 = at.mono(s.startNs);
    const step = s.intervalNs / 1e9;
    for (const c of s.cpus) c.netRxWaitMaxNs.forEach((v, j) => v !== null && heat.push({ x: x0 + (j + 0.5) * step, y: c.cpu, v: v / 1e6 }));
  }
  const culprit = ping?.verdict.culprit?.culprit ?? r.verdict.culprit?.culprit ?? r.timers.byMax[0]?.symbol ?? null;
  const hist = (probe: string, key: string | null) =>
    r.histograms
      .filter((h) => h.probe === probe && h.cpu !== null && (key === null || h.key === key))
      .map((h) => ({ cpu: h.cpu, buckets: h.buckets.map((b) => ({ lo: b.lo, count: b.count })) }));
  return {
    durationS: r.meta.durationMs / 1000,
    cpus: [...cpuSet].sort((a, b) => a - b),
    intervalS: s ? s.intervalNs / 1e9 : null,
    heat,
    stalls: stallEvents(r.stalls.rows).map((e) => ({ t: at.mono(e.startNs), ms: e.durationNs / 1e6, cpu: e.cpu, culprit: e.culprit })),
    slowPackets: r.packets.slow.map((p) => ({
      t: at.mono(p.startNs),
      cpu: p.cpu,
      waitMs: p.waitNs === null ? null : p.waitNs / 1e6,
      flow: flowText(p),
      culprit: p.attribution ? `${p.attribution.culprit} on CPU ${p.attribution.cpu}` : null,
    })),
    receiveStalls: (r.receive?.stalls ?? []).map((x) => ({
      t: at.mono(x.raiseNs),
      cpu: x.cpu,
      waitMs: x.waitNs / 1e6,
      deferred: x.deferred,
      thread: x.napiThread !== null,
      culprit: x.attribution ? `${x.attribution.culprit} on CPU ${x.attribution.cpu}` : null,
    })),
    wakeups: (r.wakeups?.slow ?? []).map((x) => ({
      t: at.mono(x.startNs),
      cpu: x.cpu,
      ms: x.durationNs / 1e6,
      text: wakeupText(x),
    })),
    replies: (ping?.replies ?? [])
      .filter((x) => x.wallTime !== null && x.rttMs !== null)
      .map((x) => ({ t: at.wall(x.wallTime!), cpu: x.replyCpu ?? x.requestCpu, rttMs: x.rttMs, slow: x.slow, seq: x.seq })),
    culprit,
    netRxWait: hist('net_rx_wait', null),
    culpritRuns: culprit ? hist('timer_callbacks', culprit) : [],
  };
}

function verdictBlock(r: Report): string {
  const ping = (r as PingReport).ping;
  const texts = ping ? [ping.verdict.text, r.verdict.text] : [r.verdict.text];
  return texts.map((t) => `<pre class="verdict">${esc(t)}</pre>`).join('\n');
}

function tables(r: Report): string {
  const row = (cells: string[]) => `<tr>${cells.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`;
  const head = (cells: string[]) => `<tr>${cells.map((c) => `<th>${esc(c)}</th>`).join('')}</tr>`;
  const m = r.meta;
  const callbacks = r.timers.byMax
    .slice(0, 20)
    .map((t) => row([t.symbol, t.kind, String(t.cpu), String(t.count), fmtNs(t.p99Ns), fmtNs(t.maxNs), fmtNs(t.totalNs)]));
  const probes = Object.entries(m.probes).map(([name, p]) => row([name, p.active ? (p.mode ?? '') : 'inactive', p.reason ?? '']));
  const drops = m.drops.total
    ? `<p class="warn">${m.drops.total} events were dropped (ring buffer full): the figures undercount. Per CPU: ${esc(m.drops.perCpu.join(', '))}.</p>`
    : '<p>No events were dropped.</p>';
  const lost =
    (m.drops.badRecords ?? 0) + (m.drops.consumeErrors ?? 0)
      ? `<p class="warn">The ring reader lost records: ${m.drops.badRecords ?? 0} could not be decoded, ${m.drops.consumeErrors ?? 0} reads failed.</p>`
      : '';
  const notes = m.notes.length ? `<ul>${m.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : '<p>No notes.</p>';
  return `<h2>Timer callbacks, longest first</h2>
<table id="callbacks">${head(['callback', 'kind', 'CPU', 'runs', 'p99', 'max', 'total'])}${callbacks.join('')}</table>
<h2>Probes</h2>
<table id="probes">${head(['probe', 'attached by', 'note'])}${probes.join('')}</table>
<h2>Drops and notes</h2>
${drops}${lost}
${notes}`;
}

/** The page's own script: turns DATA into charts. Runs in the browser. */
const PAGE_SCRIPT = String.raw`
(function () {
  const D = JSON.parse(document.getElementById('data').textContent);
  Chart.defaults.animation = false;
  Chart.defaults.font.size = 11;
  // one tick per CPU, between grid lines that separate the CPUs
  const yCpu = {
    type: 'linear', min: Math.min(...D.cpus, 0) - 0.5, max: Math.max(...D.cpus, 0) + 0.5, reverse: true,
    afterBuildTicks: (axis) => { axis.ticks = D.cpus.map((value) => ({ value })); },
    ticks: { callback: (v) => 'CPU ' + v }, grid: { offset: false },
  };
  const xTime = { type: 'linear', min: 0, max: Math.max(D.durationS, 1), title: { display: true, text: 'seconds since start' } };
  const fmtMs = (ms) => (ms >= 1 ? ms.toFixed(1) + ' ms' : (ms * 1000).toFixed(0) + ' µs');

  // NET_RX wait: 10 µs (pale) .. 100 ms and more (dark red), on a log scale
  const heatColour = (ms) => {
    const t = Math.max(0, Math.min(1, Math.log10(Math.max(ms, 0.01) / 0.01) / 4));
    return 'hsl(' + Math.round(55 - 55 * t) + ', 95%, ' + Math.round(75 - 40 * t) + '%)';
  };
  if (D.heat.length) {
    new Chart(document.getElementById('heatmap'), {
      type: 'matrix',
      data: { datasets: [{
        data: D.heat,
        backgroundColor: (c) => heatColour(c.raw.v),
        width: (c) => { const a = c.chart.chartArea; return a ? Math.max(1, (a.width * D.intervalS) / xTime.max - 1) : 0; },
        height: (c) => { const a = c.chart.chartArea; return a ? Math.max(1, a.height / (yCpu.max - yCpu.min) - 2) : 0; },
      }] },
      options: {
        maintainAspectRatio: false,
        scales: { x: xTime, y: yCpu },
        plugins: { legend: { display: false }, tooltip: { callbacks: { label: (c) => 'CPU ' + c.raw.y + ' at ' + c.raw.x.toFixed(1) + ' s: NET_RX wait max ' + fmtMs(c.raw.v) } } },
      },
    });
  } else document.getElementById('heatmap-box').insertAdjacentHTML('beforeend', '<p class="empty">No NET_RX waits in this report (older report, or no received packets).</p>');

  // stalls as segments per CPU, coloured by culprit; slow packets and ping replies as marks beside them
  const palette = ['#d62728', '#1f77b4', '#9467bd', '#ff7f0e', '#17becf', '#8c564b'];
  const culprits = [...new Set(D.stalls.map((s) => s.culprit))];
  const byCulprit = culprits.slice(0, palette.length).map((name, i) => ({
    type: 'line', label: 'stall: ' + name, borderColor: palette[i], backgroundColor: palette[i], borderWidth: 9, borderCapStyle: 'round',
    pointRadius: 0, spanGaps: false, parsing: false, order: 2,
    data: D.stalls.filter((s) => s.culprit === name).flatMap((s) => [
      { x: s.t, y: s.cpu, s }, { x: s.t + s.ms / 1000, y: s.cpu, s }, { x: s.t + s.ms / 1000, y: NaN },
    ]),
  }));
  const others = D.stalls.filter((s) => culprits.indexOf(s.culprit) >= palette.length);
  if (others.length) byCulprit.push({ type: 'line', label: 'stall: other', borderColor: '#999', borderWidth: 9, borderCapStyle: 'round', pointRadius: 0, spanGaps: false, parsing: false,
    data: others.flatMap((s) => [{ x: s.t, y: s.cpu, s }, { x: s.t + s.ms / 1000, y: s.cpu, s }, { x: s.t + s.ms / 1000, y: NaN }]) });
  const marks = [];
  if (D.slowPackets.length) marks.push({ type: 'scatter', label: 'slow packet', pointStyle: 'triangle', pointRadius: 4, backgroundColor: '#000', order: 1,
    data: D.slowPackets.map((p) => ({ x: p.t, y: p.cpu + 0.25, p })) });
  // a late NET_RX run: a thin bar from its raise to its start, just above the CPU's line
  if (D.receiveStalls.length) marks.push({ type: 'line', label: 'NET_RX waiting (late run)', borderColor: '#000', borderWidth: 2, pointRadius: 0, spanGaps: false, parsing: false, order: 1,
    data: D.receiveStalls.flatMap((w) => [{ x: w.t, y: w.cpu + 0.15, w }, { x: w.t + w.waitMs / 1000, y: w.cpu + 0.15, w }, { x: w.t + w.waitMs / 1000, y: NaN }]) });
  // a task woken by receive processing: a thin bar over its wait to run (or its run that lost time), just below the CPU's line
  if (D.wakeups.length) marks.push({ type: 'line', label: 'slow wake-up / stolen run', borderColor: '#d62728', borderWidth: 2, pointRadius: 0, spanGaps: false, parsing: false, order: 1,
    data: D.wakeups.flatMap((k) => [{ x: k.t, y: k.cpu - 0.15, k }, { x: k.t + k.ms / 1000, y: k.cpu - 0.15, k }, { x: k.t + k.ms / 1000, y: NaN }]) });
  const replies = D.replies.filter((r) => r.cpu !== null);
  if (replies.length) {
    marks.push({ type: 'scatter', label: 'ping reply', pointRadius: 1.5, backgroundColor: '#2ca02c', order: 1, data: replies.filter((r) => !r.slow).map((r) => ({ x: r.t, y: r.cpu - 0.25, r })) });
    marks.push({ type: 'scatter', label: 'slow ping reply', pointStyle: 'triangle', pointRadius: 4, backgroundColor: '#e377c2', order: 1, data: replies.filter((r) => r.slow).map((r) => ({ x: r.t, y: r.cpu - 0.25, r })) });
  }
  new Chart(document.getElementById('timeline'), {
    type: 'scatter',
    data: { datasets: byCulprit.concat(marks) },
    options: {
      maintainAspectRatio: false,
      scales: { x: xTime, y: yCpu },
      plugins: { tooltip: { callbacks: { label: (c) => {
        const o = c.raw;
        if (o.s) return o.s.culprit + ' on CPU ' + o.s.cpu + ': ' + fmtMs(o.s.ms) + ' at ' + o.s.t.toFixed(3) + ' s';
        if (o.p) return o.p.flow + ' waited ' + (o.p.waitMs === null ? '?' : fmtMs(o.p.waitMs)) + (o.p.culprit ? ' — ' + o.p.culprit : '');
        if (o.r) return 'reply ' + o.r.seq + ': ' + fmtMs(o.r.rttMs);
        if (o.k) return o.k.text;
        if (o.w) return (o.w.thread ? 'NAPI thread waited ' : 'NET_RX waited ') + fmtMs(o.w.waitMs) + (o.w.deferred ? ' (ksoftirqd)' : '') + (o.w.culprit ? ' — ' + o.w.culprit : '');
        return '';
      } } } },
    },
  });

  // histograms: one dataset per CPU over power-of-two buckets
  const bound = (v) => (v >= 1e6 ? +(v / 1e6).toPrecision(3) + ' ms' : v >= 1e3 ? +(v / 1e3).toPrecision(3) + ' µs' : v + ' ns');
  const histChart = (id, rows, title) => {
    const box = document.getElementById(id + '-box');
    if (!rows.length) { box.insertAdjacentHTML('beforeend', '<p class="empty">Nothing measured.</p>'); return; }
    const los = [...new Set(rows.flatMap((r) => r.buckets.map((b) => b.lo)))].sort((a, b) => a - b);
    new Chart(document.getElementById(id), {
      type: 'bar',
      data: { labels: los.map(bound), datasets: rows.map((r, i) => ({
        label: 'CPU ' + r.cpu, backgroundColor: palette[i % palette.length],
        data: los.map((lo) => (r.buckets.find((b) => b.lo === lo) || { count: 0 }).count),
      })) },
      options: { maintainAspectRatio: false, scales: { y: { type: 'logarithmic', title: { display: true, text: 'count' } }, x: { title: { display: true, text: title } } } },
    });
  };
  histChart('netrx', D.netRxWait, 'NET_RX wait (bucket from)');
  histChart('culprit', D.culpritRuns, (D.culprit || 'culprit') + ' run time (bucket from)');
  document.body.dataset.rendered = String(performance.now());
})();
`;

const STYLE = `
body { font: 13px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
pre.verdict { background: #fff8e5; border-left: 4px solid #e6a100; padding: .8em; white-space: pre-wrap; }
.box { position: relative; height: 260px; } .box.small { height: 220px; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; border-bottom: 1px solid #ddd; text-align: left; }
.meta, .empty { color: #666; } .warn { color: #b00; font-weight: bold; }
`;

export function renderHtml(r: Report): string {
  const m = r.meta;
  const title = `jitterscope ${(r as PingReport).ping ? 'ping' : 'report'}: ${m.host}, ${m.startTime}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>${esc(title)}</title><style>${STYLE}</style></head>
<body>
<h1>${esc(title)}</h1>
<p class="meta">jitterscope ${esc(m.tool.version)} on ${esc(m.host)} (${esc(m.kernel)}), ${(m.durationMs / 1000).toFixed(1)} s from ${esc(m.startTime)};
${m.events.total} events; command: <code>${esc(m.command.join(' '))}</code></p>
<h2>Verdict</h2>
${verdictBlock(r)}
<h2>NET_RX wait per CPU over time (longest wait in each ${r.series ? fmtNs(r.series.intervalNs) : ''} interval)</h2>
<div class="box" id="heatmap-box"><canvas id="heatmap"></canvas></div>
<h2>Stalls per CPU, with slow packets (▲ above the line), late NET_RX runs (a thin bar from raise to run) and ping replies (below)</h2>
<div class="box" id="timeline-box"><canvas id="timeline"></canvas></div>
<h2>NET_RX wait per CPU</h2>
<div class="box small" id="netrx-box"><canvas id="netrx"></canvas></div>
<h2>Run times of the culprit</h2>
<div class="box small" id="culprit-box"><canvas id="culprit"></canvas></div>
${tables(r)}
<script id="data" type="application/json">${scriptJson(pageData(r))}</script>
<script>${libraries().replace(/<\/script/gi, '<\\/script')}</script>
<script>${PAGE_SCRIPT}</script>
</body></html>
`;
}
