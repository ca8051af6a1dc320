// The TypeScript side of the event ABI in bpf/jitterscope.h. Offsets here are
// checked against the addon's offsetof table by test/02-abi.test.ts.

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
export const NET_RX_SOFTIRQ = 3;
export const TIMER_SOFTIRQ = 1;
export const HRTIMER_SOFTIRQ = 8;

const TWO32 = 4294967296;

/**
 * Reads events out of a batch buffer without allocating per event. The view
 * is bound to one ArrayBuffer (the addon reuses the same one for every batch).
 * u64 fields come back as doubles: exact below 2^53 ns (104 days).
 */
export class EventView {
  readonly u32: Uint32Array;
  readonly u16: Uint16Array;
  readonly u8: Uint8Array;

  constructor(readonly buffer: ArrayBuffer) {
    this.u32 = new Uint32Array(buffer);
    this.u16 = new Uint16Array(buffer);
    this.u8 = new Uint8Array(buffer);
  }

  /** Word index (u32) of event i. Each event is EVENT_SIZE / 4 = 12 words. */
  static base(i: number): number {
    return i * 12;
  }
  startNs(w: number): number {
    return this.u32[w] + this.u32[w + 1] * TWO32;
  }
  durationNs(w: number): number {
    return this.u32[w + 2] + this.u32[w + 3] * TWO32;
  }
  keyLo(w: number): number {
    return this.u32[w + 4];
  }
  keyHi(w: number): number {
    return this.u32[w + 5];
  }
  /** The key as an exact number: the low 52 bits (kernel addresses keep their identity). */
  key52(w: number): number {
    return this.u32[w + 4] + (this.u32[w + 5] & 0xfffff) * TWO32;
  }
  cpu(w: number): number {
    return this.u32[w + 6];
  }
  kind(w: number): number {
    return this.u16[w * 2 + 14];
  }
  flags(w: number): number {
    return this.u16[w * 2 + 15];
  }
  softirqWaitNs(w: number): number {
    return this.u32[w + 8] + this.u32[w + 9] * TWO32;
  }
  icmpSaddr(w: number): string {
    return ipv4(this.u8, w * 4 + 32);
  }
  icmpDaddr(w: number): string {
    return ipv4(this.u8, w * 4 + 36);
  }
  icmpId(w: number): number {
    return this.u16[w * 2 + 20];
  }
  icmpSeq(w: number): number {
    return this.u16[w * 2 + 21];
  }
  icmpType(w: number): number {
    return this.u8[w * 4 + 44];
  }
  icmpCode(w: number): number {
    return this.u8[w * 4 + 45];
  }
  icmpArrivalCpu(w: number): number {
    return this.u16[w * 2 + 23];
  }
}

function ipv4(b: Uint8Array, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/** Formats a 64-bit key (hi, lo words) as a kernel address. */
export function hexAddress(hi: number, lo: number): string {
  return '0x' + hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}
