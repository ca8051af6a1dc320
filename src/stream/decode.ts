// Reads events out of a ring batch in place: the decoding half of the event
// ABI. Every field is read at kernel/abi.ts's OFFSETS, which unit/kernel/abi
// checks against the addon's offsetof table (compiled from bpf/jitterscope.h).
import { TWO32 } from '../base/address';
import { EVENT_SIZE, OFFSETS } from '../kernel/abi';

export const WORDS_PER_EVENT = EVENT_SIZE / 4;

/** A field's index in the view of its width: u32 words, u16 halves or bytes from the event's start. */
const W = (f: keyof typeof OFFSETS) => OFFSETS[f] / 4;
const H = (f: keyof typeof OFFSETS) => OFFSETS[f] / 2;
const B = (f: keyof typeof OFFSETS) => OFFSETS[f];
const START = W('start_ns');
const DURATION = W('duration_ns');
const KEY = W('key');
const CPU = W('cpu');
const KIND = H('kind');
const FLAGS = H('flags');
const SOFTIRQ_WAIT = W('softirq.wait_ns');
const SOFTIRQ_THREAD = W('softirq.thread_pid');
const SADDR = B('pkt.saddr');
const DADDR = B('pkt.daddr');
const SPORT = H('pkt.sport');
const DPORT = H('pkt.dport');
const ARRIVAL_CPU = H('pkt.arrival_cpu');
const PROTO = B('pkt.proto');
const TYPE = B('pkt.type');
const CODE = B('pkt.code');
const TASK_PID = W('task.pid');
const TASK_TGID = W('task.tgid');
const WAKE_PID = W('wake.pid');
const WAKE_TGID = W('wake.tgid');
const WAKE_STOLEN = W('wake.stolen_ns');
const WAKE_QUEUED = W('wake.queued_ns');
const WAKE_WAKER = W('wake.waker_cpu');

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

  /** Word index (u32) of event i. Each event is EVENT_SIZE / 4 words. */
  static base(i: number): number {
    return i * WORDS_PER_EVENT;
  }
  startNs(w: number): number {
    return this.u32[w + START] + this.u32[w + START + 1] * TWO32;
  }
  durationNs(w: number): number {
    return this.u32[w + DURATION] + this.u32[w + DURATION + 1] * TWO32;
  }
  /** The key's low 32 bits: softirq vector, ifindex, function id. */
  keyLo(w: number): number {
    return this.u32[w + KEY];
  }
  /** The key as an exact number: the low 52 bits (kernel addresses keep their identity). */
  key52(w: number): number {
    return this.u32[w + KEY] + (this.u32[w + KEY + 1] & 0xfffff) * TWO32;
  }
  cpu(w: number): number {
    return this.u32[w + CPU];
  }
  kind(w: number): number {
    return this.u16[w * 2 + KIND];
  }
  flags(w: number): number {
    return this.u16[w * 2 + FLAGS];
  }
  softirqWaitNs(w: number): number {
    return this.u32[w + SOFTIRQ_WAIT] + this.u32[w + SOFTIRQ_WAIT + 1] * TWO32;
  }
  /** A NAPI thread's run (flag THREADED): the thread's pid. */
  softirqThreadPid(w: number): number {
    return this.u32[w + SOFTIRQ_THREAD];
  }
  /** Packet addresses: IPv4 dotted, or IPv6 (RFC 5952 text) when flags say IPV6. */
  pktSaddr(w: number, v6: boolean): string {
    return v6 ? ipv6(this.u8, w * 4 + SADDR) : ipv4(this.u8, w * 4 + SADDR);
  }
  pktDaddr(w: number, v6: boolean): string {
    return v6 ? ipv6(this.u8, w * 4 + DADDR) : ipv4(this.u8, w * 4 + DADDR);
  }
  /** TCP/UDP source port; ICMP echo id. */
  pktSport(w: number): number {
    return this.u16[w * 2 + SPORT];
  }
  /** TCP/UDP destination port; ICMP echo sequence. */
  pktDport(w: number): number {
    return this.u16[w * 2 + DPORT];
  }
  pktArrivalCpu(w: number): number {
    return this.u16[w * 2 + ARRIVAL_CPU];
  }
  pktProto(w: number): number {
    return this.u8[w * 4 + PROTO];
  }
  /** ICMP type; TCP flags. */
  pktType(w: number): number {
    return this.u8[w * 4 + TYPE];
  }
  pktCode(w: number): number {
    return this.u8[w * 4 + CODE];
  }
  /** A NUL-terminated 16-byte comm at byte `offset` of event w. */
  private comm(w: number, offset: number): string {
    const at = w * 4 + offset;
    let end = at;
    while (end < at + 16 && this.u8[end] !== 0) end++;
    return String.fromCharCode(...this.u8.subarray(at, end));
  }
  /** A task event's comm. */
  taskComm(w: number): string {
    return this.comm(w, OFFSETS['task.comm']);
  }
  taskPid(w: number): number {
    return this.u32[w + TASK_PID];
  }
  taskTgid(w: number): number {
    return this.u32[w + TASK_TGID];
  }
  /** A wake-up (kind WAKEUP): the woken task, and what the run that followed lost (flag STOLEN). */
  wakeComm(w: number): string {
    return this.comm(w, OFFSETS['wake.comm']);
  }
  wakePid(w: number): number {
    return this.u32[w + WAKE_PID];
  }
  wakeTgid(w: number): number {
    return this.u32[w + WAKE_TGID];
  }
  wakeStolenNs(w: number): number {
    return this.u32[w + WAKE_STOLEN] + this.u32[w + WAKE_STOLEN + 1] * TWO32;
  }
  /** A data wait (flag READY): how long its task had been runnable when it ran (0: not known). */
  wakeQueuedNs(w: number): number {
    return this.u32[w + WAKE_QUEUED] + this.u32[w + WAKE_QUEUED + 1] * TWO32;
  }
  wakeWakerCpu(w: number): number {
    return this.u32[w + WAKE_WAKER];
  }
}

function ipv4(b: Uint8Array, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/** 16 bytes at byte `at` (network order) as RFC 5952 text: lower case, longest zero run as ::. */
function ipv6(b: Uint8Array, at: number): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[at + 2 * i] << 8) | b[at + 2 * i + 1]);
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff)
    return `::ffff:${b[at + 12]}.${b[at + 13]}.${b[at + 14]}.${b[at + 15]}`;
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}
