// `top` without a terminal: a plain-text block per interval, like `top -b`.
import { wakeupText } from '../diagnose/wakeup';
import { fmtNs, table, wallTime } from '../base/format';
import { flowText } from '../diagnose/verdict';
import { stallEvents } from '../diagnose/attribute';
import { cpuTableText, stallEventText } from '../report/text';
import { HISTORY_POINTS, Snapshot } from './collector';
import { sparkline } from './sparkline';

export function plainBlock(s: Snapshot, newStallsSinceNs: number): string {
  const r = s.summary;
  const out: string[] = [];
  out.push(
    `jitterscope top ${s.takenAt.toISOString()}  window ${s.window}  events ${Math.round(s.eventsPerSec)}/s  drops ${s.dropsRecent} (total ${s.dropsTotal})`,
  );
  out.push(s.verdict.text.split('\n')[0]);
  out.push(cpuTableText(r));
  for (const h of s.history.filter((x) => r.cpus.some((c) => c.cpu === x.cpu)))
    out.push(`NET_RX wait ${HISTORY_POINTS} s  cpu ${String(h.cpu).padEnd(3)} ${sparkline(h.netRxWaitMaxNs.slice(-HISTORY_POINTS)).padStart(HISTORY_POINTS)}|`);
  const timers = r.timers.byMax.slice(0, 5);
  if (timers.length)
    out.push(
      table(
        ['callback', 'CPU', 'count', 'p99', 'max', 'total'],
        timers.map((t) => [t.symbol, String(t.cpu), String(t.count), fmtNs(t.p99Ns), fmtNs(t.maxNs), fmtNs(t.totalNs)]),
      ),
    );
  const stalls = stallEvents(r.stalls.rows).filter((x) => x.startNs > newStallsSinceNs);
  for (const x of stalls.slice(-10)) out.push(`stall  ${wallTime(x.startNs, s.realtimeOffsetNs)}  cpu ${x.cpu}  ${stallEventText(x)}  ${fmtNs(x.durationNs)}`);
  if (stalls.length > 10) out.push(`(${stalls.length - 10} more stalls)`);
  const slow = r.packets.slow.filter((p) => p.startNs > newStallsSinceNs);
  for (const p of slow.slice(-5))
    out.push(
      `slow   ${wallTime(p.startNs, s.realtimeOffsetNs)}  cpu ${p.cpu}  ${flowText(p)}  waited ${fmtNs(p.waitNs ?? 0)}  ${p.attribution ? `<- ${p.attribution.culprit}` : ''}`.trimEnd(),
    );
  if (slow.length > 5) out.push(`(${slow.length - 5} more slow packets)`);
  const late = r.receive.stalls.filter((x) => x.startNs > newStallsSinceNs);
  for (const x of late.slice(-5))
    out.push(
      `recv   ${wallTime(x.raiseNs, s.realtimeOffsetNs)}  cpu ${x.cpu}  ${x.napiThread !== null ? 'NAPI thread' : 'NET_RX'} started ${fmtNs(x.waitNs)} late${x.deferred ? ' (ksoftirqd)' : ''}  ${x.attribution ? `<- ${x.attribution.culprit}` : ''}`.trimEnd(),
    );
  if (late.length > 5) out.push(`(${late.length - 5} more late NET_RX runs)`);
  const woken = r.wakeups.slow.filter((x) => x.startNs > newStallsSinceNs);
  for (const x of woken.slice(-5)) out.push(`wake   ${wallTime(x.startNs, s.realtimeOffsetNs)}  ${wakeupText(x)}`);
  if (woken.length > 5) out.push(`(${woken.length - 5} more slow wake-ups)`);
  return out.join('\n') + '\n\n';
}
