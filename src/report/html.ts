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
import type { PageData } from './page/data';

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
export function pageData(r: Report): PageData {
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

/** The page's own script (report/page/page.ts, compiled by tsconfig.page.json at build), read once. */
let pageScript: string | undefined;
function page(): string {
  // dist/src/report/html.js beside dist/src/report/page/page.js
  return (pageScript ??= fs.readFileSync(path.join(__dirname, 'page', 'page.js'), 'utf8').replace(/^\/\/# sourceMappingURL=.*$/m, ''));
}

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
<script type="module">${page().replace(/<\/script/gi, '<\\/script')}</script>
</body></html>
`;
}
