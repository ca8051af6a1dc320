// The observer yields: a tracing command's threads run at the lowest CFS
// priority, so ksoftirqd and NAPI threads (nice 0) preempt them at once and
// receive processing never waits behind the tracer that measures it. The
// trade: under overload the tracer falls behind, its ring fills and it counts
// drops (shown in every view) rather than delaying packets.
import fs from 'node:fs';
import os from 'node:os';

/** The nice value tracing commands run at: the weakest there is. */
export const OBSERVER_NICE = 19;
/**
 * serve's: still far below ksoftirqd (a tenth of its weight), but an exporter
 * that a saturated node starves misses its scrapes (at 19, one emulated guest
 * answered 15 of 19 within 5 s while ipvsadm loaded rules).
 */
export const EXPORTER_NICE = 10;

/** The nice value this process had before it yielded (null: it has not). */
let before: number | null = null;

/**
 * Every thread of this process at `nice` (Linux's nice value is per thread,
 * and setpriority(PRIO_PROCESS, 0) reaches only the caller; threads started
 * later inherit it from the thread that starts them). Returns the threads it
 * could not change (a thread that ended meanwhile is not one).
 */
export function yieldToReceiveProcessing(nice = OBSERVER_NICE): number {
  before ??= os.getPriority(0);
  let failed = 0;
  for (const tid of fs.readdirSync('/proc/self/task')) {
    try {
      os.setPriority(Number(tid), nice);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') failed++;
    }
  }
  return failed;
}

/**
 * A child this process started (the system ping), or a thread of its own that
 * measures (the mesh's UDP prober and responder), back at the priority the
 * process had before it yielded: what it measures must not wait behind other
 * tasks because of the tracer's own choice.
 */
export function restorePriority(pid: number | undefined): void {
  if (before === null || pid === undefined || pid < 0) return;
  try {
    os.setPriority(pid, before);
  } catch {
    // it ended already, or lowering nice is not allowed here (no CAP_SYS_NICE): it keeps the tracer's
  }
}
