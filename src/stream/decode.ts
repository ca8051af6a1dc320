// Reads events out of a ring batch in place: the decoding half of the event
// ABI (the offsets are kernel/abi.ts's, checked against the addon's).
import { EVENT_SIZE } from '../kernel/abi';

const TWO32 = 4294967296;
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

