// The TypeScript side of the event ABI in bpf/jitterscope.h: sizes, field
// offsets, kinds and flags. Checked against the addon's offsetof table by
// test/02-abi.test.ts; stream/decode.ts reads events with these offsets.

export const ABI_VERSION = 1;
export const EVENT_SIZE = 48;
export const MAX_CPUS = 1024;

export const OFFSETS = {
  start_ns: 0,
  duration_ns: 8,
  key: 16,
  cpu: 24,
  kind: 28,
  flags: 30,
  'softirq.wait_ns': 32,
  'icmp.saddr': 32,
  'icmp.daddr': 36,
  'icmp.id': 40,
  'icmp.seq': 42,
  'icmp.type': 44,
  'icmp.code': 45,
  'icmp.arrival_cpu': 46,
} as const;

export const Kind = { SOFTIRQ: 1, TIMER: 2, HRTIMER: 3, ICMP: 4, FUNC: 5 } as const;
export const Func = { ESTIMATION_TIMER: 1, NET_RX_ACTION: 2 } as const;
export const Flag = { WAIT_UNKNOWN: 1 } as const;

export const NR_SOFTIRQS = 10;
export const SOFTIRQ_NAMES = ['HI', 'TIMER', 'NET_TX', 'NET_RX', 'BLOCK', 'IRQ_POLL', 'TASKLET', 'SCHED', 'HRTIMER', 'RCU'];
export const TIMER_SOFTIRQ = 1;
export const NET_RX_SOFTIRQ = 3;
export const HRTIMER_SOFTIRQ = 8;
