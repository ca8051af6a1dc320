// Reads events out of a ring batch in place: the decoding half of the event
// ABI (the offsets are kernel/abi.ts's, checked against the addon's).
import { TWO32 } from '../base/address';
import { EVENT_SIZE, OFFSETS } from '../kernel/abi';

export const WORDS_PER_EVENT = EVENT_SIZE / 4;

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
    return this.u32[w] + this.u32[w + 1] * TWO32;
  }
  durationNs(w: number): number {
    return this.u32[w + 2] + this.u32[w + 3] * TWO32;
  }
  /** The key's low 32 bits: softirq vector, ifindex, function id. */
  keyLo(w: number): number {
    return this.u32[w + 4];
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
  /** A NAPI thread's run (flag THREADED): the thread's pid. */
  softirqThreadPid(w: number): number {
    return this.u32[w + 10];
  }
  /** Packet addresses: IPv4 dotted, or IPv6 (RFC 5952 text) when flags say IPV6. */
  pktSaddr(w: number, v6: boolean): string {
    return v6 ? ipv6(this.u8, w * 4 + 32) : ipv4(this.u8, w * 4 + 32);
  }
  pktDaddr(w: number, v6: boolean): string {
    return v6 ? ipv6(this.u8, w * 4 + 48) : ipv4(this.u8, w * 4 + 48);
  }
  /** TCP/UDP source port; ICMP echo id. */
  pktSport(w: number): number {
    return this.u16[w * 2 + 32];
  }
  /** TCP/UDP destination port; ICMP echo sequence. */
  pktDport(w: number): number {
    return this.u16[w * 2 + 33];
  }
  pktArrivalCpu(w: number): number {
    return this.u16[w * 2 + 34];
  }
  pktProto(w: number): number {
    return this.u8[w * 4 + 70];
  }
  /** ICMP type; TCP flags. */
  pktType(w: number): number {
    return this.u8[w * 4 + 71];
  }
  pktCode(w: number): number {
    return this.u8[w * 4 + 72];
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
    return this.u32[w + 12];
  }
  taskTgid(w: number): number {
    return this.u32[w + 13];
  }
  /** A wake-up (kind WAKEUP): the woken task, and what the run that followed lost (flag STOLEN). */
  wakeComm(w: number): string {
    return this.comm(w, OFFSETS['wake.comm']);
  }
  wakePid(w: number): number {
    return this.u32[w + OFFSETS['wake.pid'] / 4];
  }
  wakeTgid(w: number): number {
    return this.u32[w + OFFSETS['wake.tgid'] / 4];
  }
  wakeStolenNs(w: number): number {
    const i = w + OFFSETS['wake.stolen_ns'] / 4;
    return this.u32[i] + this.u32[i + 1] * TWO32;
  }
  wakeWakerCpu(w: number): number {
    return this.u32[w + OFFSETS['wake.waker_cpu'] / 4];
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
  for (let i = 0; i < 8; ) {
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
