// The TypeScript side of the event ABI in bpf/jitterscope.h: sizes, field
// offsets, kinds and flags. Checked against the addon's offsetof table by
// test/unit/kernel/abi.test.ts; stream/decode.ts reads events with these offsets.

export const ABI_VERSION = 7;
export const EVENT_SIZE = 80;
export const MAX_CPUS = 1024;

export const OFFSETS = {
  start_ns: 0,
  duration_ns: 8,
  key: 16,
  cpu: 24,
  kind: 28,
  flags: 30,
  'softirq.wait_ns': 32,
  'softirq.thread_pid': 40,
  'pkt.saddr': 32,
  'pkt.daddr': 48,
  'pkt.sport': 64,
  'pkt.dport': 66,
  'pkt.arrival_cpu': 68,
  'pkt.proto': 70,
  'pkt.type': 71,
  'pkt.code': 72,
  'task.comm': 32,
  'task.pid': 48,
  'task.tgid': 52,
  'wake.comm': 32,
  'wake.pid': 48,
  'wake.tgid': 52,
  'wake.stolen_ns': 56,
  'wake.queued_ns': 56,
  'wake.waker_cpu': 64,
} as const;

export const Kind = { SOFTIRQ: 1, TIMER: 2, HRTIMER: 3, PACKET: 4, FUNC: 5, PAUSE: 6, TASK: 7, WAKEUP: 8, WAKE_FLOW: 9 } as const;
export const Func = { ESTIMATION_TIMER: 1, NET_RX_ACTION: 2 } as const;
export const Flag = { WAIT_UNKNOWN: 1, IPV6: 2, SLOW: 4, NAPI: 8, WAIT_BOUND: 16, DEFERRED: 32, LATE_RUN: 64, THREADED: 128, STOLEN: 256, READY: 512 } as const;

export const NR_SOFTIRQS = 10;
export const SOFTIRQ_NAMES = ['HI', 'TIMER', 'NET_TX', 'NET_RX', 'BLOCK', 'IRQ_POLL', 'TASKLET', 'SCHED', 'HRTIMER', 'RCU'];
export const TIMER_SOFTIRQ = 1;
export const NET_RX_SOFTIRQ = 3;
export const HRTIMER_SOFTIRQ = 8;

/** An in-kernel histogram (struct js_hist): log2 buckets, 4 sub-buckets each. */
export const HIST_SUB_BITS = 2;
export const HIST_BUCKETS = 160;
/** count, sum_ns, max_ns, unknown, then the buckets: u64 each. */
export const HIST_VALUE_BYTES = (4 + HIST_BUCKETS) * 8;
/** Where each run histogram sits in the tracer's run_hists map (enum js_kernel_hist). */
export const KernelHistIndex = { SOFTIRQ_RUN: 0, SOFTIRQ_WAIT: 10, NET_RX_ACTION: 20, WAKEUP_WAIT: 21, COUNT: 22 } as const;
