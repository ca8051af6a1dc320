// Kernel addresses as events carry them: the low 52 bits as an exact JS
// number (kernel text, modules and the BPF JIT live in the top of the address
// space on x86_64 and arm64, so the 12 bits left out are all ones), and the
// 2^32 that u64 fields are read with as two u32 words.

export const TWO32 = 4294967296;

/** A 64-bit value from its two u32 words, exact below 2^53. */
export const u64 = (lo: number, hi: number) => lo + hi * TWO32;

/** The 52-bit key of an address from its high and low 32-bit halves. */
export const key52 = (hi: number, lo: number) => lo + (hi % 0x100000) * TWO32;

/** Low 52 bits of a 64-bit kernel address given as up to 16 hex digits (the event key form). */
export function key52FromHex(hex: string): number {
  const h = hex.padStart(16, '0');
  return key52(parseInt(h.slice(0, 8), 16), parseInt(h.slice(8), 16));
}

/** A kernel text address from its low 52 bits: 0xffff... as the kernel prints it. */
export function kernelAddressHex(k52: number): string {
  const hi = (Math.floor(k52 / TWO32) | 0xfff00000) >>> 0;
  const lo = k52 % TWO32;
  return '0x' + hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}
