// `top` without a terminal: a plain-text block per interval, like `top -b`.
import { fmtNs, table, wallTime } from '../base/format';
import { cpuTableText } from '../report/text';
import { Snapshot } from './collector';

export function plainBlock(s: Snapshot, newStallsSinceNs: number): string {
  const r = s.report;
  const out: string[] = [];
  out.push(
    `jitterscope top ${s.takenAt.toISOString()}  window ${s.window}  events ${Math.round(s.eventsPerSec)}/s  drops ${s.dropsRecent} (total ${s.dropsTotal})`,
  );
  out.push(cpuTableText(r));
  const timers = r.timers.byMax.slice(0, 5);
  if (timers.length)
    out.push(
      table(
        ['callback', 'CPU', 'count', 'p99', 'max', 'total'],
        timers.map((t) => [t.symbol, String(t.cpu), String(t.count), fmtNs(t.p99Ns), fmtNs(t.maxNs), fmtNs(t.totalNs)]),
      ),
    );
  const stalls = r.stalls.rows.filter((x) => x.startNs > newStallsSinceNs);
  for (const x of stalls.slice(-10))
    out.push(`stall  ${wallTime(x.startNs, s.realtimeOffsetNs)}  cpu ${x.cpu}  ${x.culprit}  ${fmtNs(x.durationNs)}`);
  if (stalls.length > 10) out.push(`(${stalls.length - 10} more stalls)`);
  return out.join('\n') + '\n\n';
}
