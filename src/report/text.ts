// The report as text: the verdict first, then bpftrace-style histograms, the
// per-CPU table that `record -f text` and `top` share, callbacks, ICMP packets
// and stalls.
import { wakeupCostNs, wakeupText } from '../diagnose/wakeup';
import { fmtNs, table } from '../base/format';
import { slowPacketsText } from '../diagnose/verdict';
import { StallEvent, stallEvents } from '../diagnose/attribute';
import { CpuSummary, Log2Bucket, PingSection, Report } from './model';
import { peerSummary, peerText } from '../diagnose/explain';
import type { MeshView, ProbeOutcome } from '../diagnose/mesh';

export const stallEventText = (e: StallEvent) => `${e.culprit}${e.within ? ` (in ${e.within})` : ''}`;

/** Bucket bound as bpftrace prints them: 512, 1K, 2M (binary multiples). */
function fmtBound(v: number): string {
  const sfx = ['', 'K', 'M', 'G', 'T', 'P'];
  let i = 0;
  while (v >= 1024 && v % 1024 === 0 && i < sfx.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v}${sfx[i]}`;
}

export function renderHistogram(title: string, buckets: Log2Bucket[], width = 52): string {
  const lines = [`${title}:`];
  const max = Math.max(1, ...buckets.map((b) => b.count));
  for (const b of buckets) {
    const range = `[${fmtBound(b.lo)}, ${fmtBound(b.hi)})`;
    const bar = '@'.repeat(Math.round((b.count / max) * width));
    lines.push(`${range.padEnd(20)}${String(b.count).padStart(8)} |${bar.padEnd(width)}|`);
  }
  return lines.join('\n');
}

export const CPU_TABLE_HEAD = [
  'CPU',
  'pkt wait p99',
  'max',
  'NET_RX wait p99',
  'max',
  'NET_RX run p99',
  'max',
  'TIMER max',
  'HRTIMER max',
  'ipvs_est max',
  'ICMP',
  'steal',
  'paused max',
  'longest callback',
];

/** The cells of one CPU row, as text. */
export function cpuCells(c: CpuSummary): string[] {
  const ns = (v: number | null) => (v === null ? '-' : fmtNs(v));
  return [
    String(c.cpu),
    ns(c.packetWaitP99),
    ns(c.packetWaitMax),
    ns(c.netRxWaitP99),
    ns(c.netRxWaitMax),
    ns(c.netRxRunP99),
    ns(c.netRxRunMax),
    ns(c.timerSoftirqMax),
    ns(c.hrtimerSoftirqMax),
    ns(c.ipvsMax),
    String(c.icmp),
    c.stealNs ? fmtNs(c.stealNs) : '0',
    ns(c.pauseMax ?? null),
    c.worst ? `${c.worst.culprit} ${fmtNs(c.worst.durationNs)}` : '-',
  ];
}

/** The figures behind each cell (for colouring), null where a cell is not a duration. */
export function cpuCellValues(c: CpuSummary): (number | null)[] {
  return [
    null,
    c.packetWaitP99,
    c.packetWaitMax,
    c.netRxWaitP99,
    c.netRxWaitMax,
    c.netRxRunP99,
    c.netRxRunMax,
    c.timerSoftirqMax,
    c.hrtimerSoftirqMax,
    c.ipvsMax,
    null,
    c.stealNs || null,
    c.pauseMax ?? null,
    c.worst?.durationNs ?? null,
  ];
}

export function cpuTableText(r: Pick<Report, 'cpus'>): string {
  return table(CPU_TABLE_HEAD, r.cpus.map(cpuCells), [0, CPU_TABLE_HEAD.length - 1]);
}

export function renderText(r: Report): string {
  const m = r.meta;
  const out: string[] = [r.verdict.text];
  const slow = slowPacketsText(r.packets.slow);
  if (slow) out.push(slow);
  if (r.mesh) out.push('', ...meshText(r.mesh));
  out.push('');
  out.push(`jitterscope ${m.tool.version} on ${m.host} (${m.kernel}), ${(m.durationMs / 1000).toFixed(1)} s from ${m.startTime}`);
  out.push(`events: ${m.events.total}  ${lossText(m.drops)}`);
  out.push('');
  out.push('probes:');
  for (const [name, p] of Object.entries(m.probes)) out.push(`  ${name.padEnd(16)} ${p.active ? p.mode : 'inactive'}${p.reason ? ` — ${p.reason}` : ''}`);
  for (const n of m.notes) out.push(`note: ${n}`);

  out.push('');
  out.push(cpuTableText(r));

  if (r.timers.byMax.length) {
    out.push('');
    out.push('timer callbacks, longest first:');
    out.push(
      table(
        ['callback', 'kind', 'CPU', 'count', 'p99', 'max', 'total'],
        r.timers.byMax.slice(0, 10).map((t) => [t.symbol, t.kind, String(t.cpu), String(t.count), fmtNs(t.p99Ns), fmtNs(t.maxNs), fmtNs(t.totalNs)]),
      ),
    );
  }

  for (const h of r.histograms.filter((h) => h.probe === 'packet_wait' && h.cpu !== null)) {
    out.push('');
    out.push(renderHistogram(`@packet_wait_ns[cpu ${h.cpu}]`, h.buckets));
  }
  if (r.packets.waitUnknown) out.push(`(${r.packets.waitUnknown} packets arrived unseen: their wait is not counted)`);
  for (const h of r.histograms.filter((h) => h.probe === 'net_rx_wait' && h.cpu !== null)) {
    out.push('');
    out.push(renderHistogram(`@net_rx_wait_ns[cpu ${h.cpu}]`, h.buckets));
  }
  for (const h of r.histograms.filter((h) => h.probe === 'pause' && h.cpu !== null)) {
    out.push('');
    out.push(renderHistogram(`@pause_ns[cpu ${h.cpu}] (no timer interrupt: host pause or IRQs off)`, h.buckets));
  }
  for (const t of r.timers.byMax.slice(0, 3)) {
    const h = r.histograms.find((x) => x.probe === 'timer_callbacks' && x.key === t.symbol && x.cpu === t.cpu);
    if (h) {
      out.push('');
      out.push(renderHistogram(`@timer_ns[${t.symbol}, cpu ${t.cpu}]`, h.buckets));
    }
  }
  if (r.icmp.packets.length || r.icmp.packetsNotKept) {
    out.push('');
    const per = r.icmp.perCpu.map((c) => `cpu ${c.cpu}: ${c.count}`).join(', ');
    out.push(`ICMP packets: ${per}`);
    for (const p of r.icmp.slowest.slice(0, 5))
      out.push(
        `  ${p.saddr} -> ${p.daddr} ${p.proto} type ${p.type} id ${p.id} seq ${p.seq}: waited ${fmtNs(p.waitNs ?? 0)} (arrived cpu ${p.arrivalCpu}, processed cpu ${p.cpu})`,
      );
  }
  if (r.stalls.rows.length) {
    out.push('');
    const events = stallEvents(r.stalls.rows);
    const longest = [...events].sort((a, b) => b.durationNs - a.durationNs).slice(0, 5);
    out.push(`stalls of ${fmtNs(r.stalls.thresholdNs)} or more: ${events.length}; longest:`);
    for (const s of longest) out.push(`  cpu ${s.cpu}  ${stallEventText(s)}  ${fmtNs(s.durationNs)}`);
  }
  const receive = r.receive?.stalls ?? [];
  if (receive.length) {
    out.push('');
    out.push(`receive stalls (NET_RX runs that started ${fmtNs(r.receive!.thresholdNs)} or more after their raise): ${receive.length}; longest:`);
    for (const x of [...receive].sort((a, b) => b.waitNs - a.waitNs).slice(0, 5))
      out.push(
        `  cpu ${x.cpu}  waited ${fmtNs(x.waitNs)}${x.deferred ? ' (ran in ksoftirqd)' : ''}${x.napiThread !== null ? ` (NAPI thread pid ${x.napiThread})` : ''}  ${x.attribution ? `${x.attribution.culprit} on CPU ${x.attribution.cpu}` : '-'}`,
      );
  }
  const wakeups = r.wakeups?.slow ?? [];
  if (wakeups.length) {
    out.push('');
    out.push(
      `slow wake-ups (tasks woken by receive processing, or already awake when their data arrived, that waited ${fmtNs(r.wakeups!.thresholdNs)} or more to run, or lost that much of their run): ${wakeups.length}; longest:`,
    );
    for (const x of [...wakeups].sort((a, b) => wakeupCostNs(b) - wakeupCostNs(a)).slice(0, 5)) out.push(`  ${wakeupText(x)}`);
  }
  return out.join('\n') + '\n';
}

/**
 * What was lost between the kernel and the report, in one phrase: ring-full
 * drops, and records the reader lost (malformed, or a failed read). Every
 * loss is named, with what it means; none is left out when it is zero.
 */
export function lossText(d: { total: number; badRecords?: number; consumeErrors?: number }): string {
  const bad = d.badRecords ?? 0;
  const errors = d.consumeErrors ?? 0;
  const parts = [`drops: ${d.total}`, `bad records: ${bad}`, `read errors: ${errors}`];
  const why: string[] = [];
  if (d.total) why.push('the ring buffer was full: figures undercount; raise --ring-mb');
  if (bad) why.push('records the reader could not decode were skipped');
  if (errors) why.push('reading the ring failed: events may be missing');
  return parts.join('  ') + (why.length ? `  (${why.join('; ')})` : '');
}

/** ping --explain-from: each slow reply as this node and the peer saw it. */
export function peerSectionText(s: PingSection, limit = 20): string {
  const p = s.peer;
  if (!p) return '';
  const slow = s.replies.filter((r) => r.slow);
  const lines = [peerSummary(p, slow.length)];
  // what did answer is shown even when a later batch did not
  if (!p.probes.length) return lines.join('\n');
  const there = new Map(p.probes.map((x) => [x.seq, x]));
  lines.push('  seq  here                                        at the peer');
  for (const r of slow.slice(0, limit)) {
    const a = r.attribution;
    const here = a ? `${a.culprit} on CPU ${a.cpu}` : 'no single cause';
    const x = there.get(r.seq);
    lines.push(`  ${String(r.seq).padStart(3)}  ${here.padEnd(42)}  ${x ? peerText(x) : '-'}`);
  }
  return lines.join('\n');
}

/** The mesh in a few lines, for a report's text: each peer's probes and where its slow ones were held. */
export function meshText(m: MeshView): string[] {
  const out = [`mesh: ${m.node} probes ${m.peers.length} of ${m.candidates} peers (${m.peersFrom}), ${m.probesPerSecond}/s each; slow means >= ${m.slowMs} ms`];
  for (const p of m.peers) {
    const rtt = p.rttP50Ms === null ? 'no reply yet' : `rtt p50 ${p.rttP50Ms.toFixed(2)} ms, p99 ${p.rttP99Ms!.toFixed(2)} ms`;
    out.push(`  ${p.name} (${p.address}): ${p.state}${p.detail ? ` (${p.detail})` : ''}; ${p.sent} sent, ${p.lost} lost, ${p.slow} slow; ${rtt}`);
    if (p.slow) out.push(`    held at the peer ${p.bySide.peer}, here ${p.bySide.here}, between ${p.bySide.between}, not known ${p.bySide.unknown}`);
    const by = new Map<string, number>();
    for (const o of p.recent) {
      if (!o.culprit) continue;
      const what = `${o.culprit} on CPU ${o.cpu ?? '?'} (${o.side === 'peer' ? 'at the peer' : 'here'})`;
      by.set(what, (by.get(what) ?? 0) + 1);
    }
    const top = [...by].sort((a, b) => b[1] - a[1])[0];
    if (top) out.push(`    most of the newest: ${top[0]}, ${top[1]} of ${p.recent.length}`);
    if (p.udpState !== p.state) out.push(`    UDP: ${p.udpState}${p.udpDetail ? ` (${p.udpDetail})` : ''}`);
    if (p.recentLost.length) {
      const n = (saw: ProbeOutcome['peerSaw']) => p.recentLost.filter((o) => o.peerSaw === saw).length;
      const parts = [
        `${n('not-seen')} never reached the peer's responder (UDP)`,
        `${n('seen')} answered there, the reply lost (UDP)`,
        `${n('slow')} held there`,
        `${n('not-slow')} not seen held there (ICMP: lost on the way, or their replies)`,
        `${n(null)} the peer did not answer about`,
      ];
      out.push(`    the newest ${p.recentLost.length} lost: ${parts.filter((x) => !x.startsWith('0 ')).join(', ')}`);
    }
  }
  for (const n of m.notes) out.push(`  note: ${n}`);
  return out;
}
