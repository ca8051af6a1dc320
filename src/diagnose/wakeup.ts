// The application's share: tasks woken by receive processing, explained by
// the one engine. A slow wake-up waited for its CPU from sched_waking to its
// switch-in: whatever ran there meanwhile (a timer callback, a softirq, a
// host pause, another task) held it. A stolen run lost softirq time while it
// ran: the callback or softirq that took the most of it took it. Pure logic.
import { SocketFlow, Wakeup } from '../stream/aggregate';
import { explainWait, indexStalls, Overlap, StallIndex, StallRow, taskCulprit, WaitWindow } from './attribute';

export interface WakeupRow extends Wakeup {
  /** The woken task as a culprit names tasks: comm[pid]. */
  task: string;
  attribution: Overlap | null;
}

/** A wake-up's stretch on its CPU: from the wake-up to its switch-in (or the run that lost time). */
export const wakeupWindow = (x: Wakeup): WaitWindow => ({ cpus: [x.cpu], from: x.startNs, to: x.startNs + x.durationNs });

/** What a wake-up cost its task: the wait to run, or the time taken from its run. */
export const wakeupCostNs = (x: Wakeup) => (x.kind === 'stolen' ? x.stolenNs : x.durationNs);

/** Each slow wake-up and stolen run with what explains it. `stalls` are the trace's stall rows. */
export function attributeWakeups(wakeups: Wakeup[], stalls: StallRow[], index: StallIndex = indexStalls(stalls)): WakeupRow[] {
  // time taken from a running task is softirqs' and interrupts': another task cannot have held its CPU
  let runsOnly: StallIndex | undefined;
  return wakeups.map((x) => {
    const window = [wakeupWindow(x)];
    const attribution =
      x.kind !== 'stolen'
        ? explainWait(window, x.durationNs / 1e6, index).attribution
        : explainWait(window, x.stolenNs / 1e6, (runsOnly ??= indexStalls(stalls.filter((s) => s.kind !== 'task' && s.kind !== 'self')))).attribution;
    return { ...x, task: taskCulprit(x.comm, x.pid), attribution };
  });
}

const hostPort = (a: string, port: number) => (a.includes(':') ? `[${a}]:${port}` : `${a}:${port}`);

/** A wake-up's socket: "tcp 10.92.0.2:41234 -> 10.92.0.1:7799", the peer "*" when not connected. */
export function socketFlowText(f: SocketFlow): string {
  // a ping socket's "port" is its echo id
  if (f.proto === 'icmp' || f.proto === 'icmpv6') return `${f.proto} ping socket ${f.daddr} (id ${f.dport})`;
  return `${f.proto} ${f.saddr === null ? '*' : hostPort(f.saddr, f.sport ?? 0)} -> ${hostPort(f.daddr, f.dport)}`;
}

/**
 * The service side of a wake-up's socket, for counting flows: the ephemeral
 * port (the higher of the two) left out. A server's socket keeps its own
 * port ("tcp 10.0.0.2 -> 10.0.0.1:7799"), a client's the peer's
 * ("tcp 10.0.0.9:443 -> 10.0.0.1").
 */
export function serviceFlowText(f: SocketFlow): string {
  if (f.proto === 'icmp' || f.proto === 'icmpv6') return socketFlowText(f);
  const client = f.saddr !== null && f.sport !== null && f.sport < f.dport;
  return client ? `${f.proto} ${hostPort(f.saddr!, f.sport!)} -> ${f.daddr}` : `${f.proto} ${f.saddr ?? '*'} -> ${hostPort(f.daddr, f.dport)}`;
}

/** One line about a wake-up for the text views. */
export function wakeupText(x: WakeupRow): string {
  const what =
    x.kind === 'wait'
      ? `${x.task} waited ${(x.durationNs / 1e6).toFixed(1)} ms to run on CPU ${x.cpu} after receive processing on CPU ${x.wakerCpu} woke it`
      : x.kind === 'ready'
        ? `${x.task}, already awake${x.queuedNs ? ` (runnable for ${(x.queuedNs / 1e6).toFixed(1)} ms)` : ''}, ran on CPU ${x.cpu} ${(x.durationNs / 1e6).toFixed(1)} ms after its data arrived (receive processing on CPU ${x.wakerCpu})`
        : `${x.task} lost ${(x.stolenNs / 1e6).toFixed(1)} ms of a ${(x.durationNs / 1e6).toFixed(1)} ms run on CPU ${x.cpu} to softirqs`;
  const flow = x.flow ? ` (${socketFlowText(x.flow)})` : '';
  return `${what}${flow}: ${x.attribution ? `${x.attribution.culprit} on CPU ${x.attribution.cpu}, ${coveredText(x.attribution.overlapMs, wakeupCostNs(x) / 1e6)}` : 'no single cause'}`;
}

/** The share of a wait a culprit covered: "covered 58.1 of 60.2 ms (97 %)" (never more than the wait). */
export function coveredText(overlapMs: number, waitMs: number): string {
  const ms = Math.min(overlapMs, waitMs);
  return `covered ${ms.toFixed(1)} of ${waitMs.toFixed(1)} ms (${waitMs > 0 ? Math.round((100 * ms) / waitMs) : 0} %)`;
}
