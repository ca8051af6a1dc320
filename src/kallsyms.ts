// Kernel symbol lookup from /proc/kallsyms, for naming timer callbacks.
import fs from 'node:fs';

const TWO32 = 4294967296;

export interface KernelSymbol {
  name: string;
  module: string | null;
}

/** Low 52 bits of a 64-bit kernel address given as 16 hex digits (the event key form). */
export function key52FromHex(hex: string): number {
  const h = hex.padStart(16, '0');
  return parseInt(h.slice(8), 16) + (parseInt(h.slice(0, 8), 16) & 0xfffff) * TWO32;
}

export class Kallsyms {
  private readonly byAddr = new Map<number, KernelSymbol>();
  private sorted: number[] | undefined;
  /** True when every address reads as zero (kernel.kptr_restrict, or no CAP_SYSLOG). */
  readonly hidden: boolean;
  readonly count: number;

  constructor(text: string) {
    let nonzero = 0;
    let n = 0;
    for (const line of text.split('\n')) {
      // "ffffffff8150e200 t bpf_timer_cb" or "... t estimation_timer\t[ip_vs]"
      const sp1 = line.indexOf(' ');
      if (sp1 !== 16) continue;
      const type = line[17];
      if (type !== 't' && type !== 'T' && type !== 'w' && type !== 'W') continue;
      let name = line.slice(19);
      let module: string | null = null;
      const tab = name.indexOf('\t');
      if (tab >= 0) {
        module = name.slice(tab + 1).replace(/^\[|\]$/g, '');
        name = name.slice(0, tab);
      }
      if (name.startsWith('__pfx_') || name.startsWith('__cfi_')) continue;
      const key = key52FromHex(line.slice(0, 16));
      n++;
      if (key) nonzero++;
      if (!this.byAddr.has(key)) this.byAddr.set(key, { name, module });
    }
    this.count = n;
    this.hidden = n > 0 && nonzero === 0;
  }

  static load(path = '/proc/kallsyms'): Kallsyms {
    return new Kallsyms(fs.readFileSync(path, 'utf8'));
  }

  /** The symbol starting exactly at `key`, else the nearest below it as name+0xoff. */
  resolve(key: number): string | null {
    if (this.hidden || !key) return null;
    const exact = this.byAddr.get(key);
    if (exact) return exact.module ? `${exact.name} [${exact.module}]` : exact.name;
    const addrs = (this.sorted ??= [...this.byAddr.keys()].sort((a, b) => a - b));
    let lo = 0;
    let hi = addrs.length - 1;
    let best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (addrs[mid] <= key) {
        best = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (best < 0) return null;
    const off = key - addrs[best];
    if (off > 1 << 20) return null; // too far to be a real function offset
    const s = this.byAddr.get(addrs[best])!;
    return `${s.name}+0x${off.toString(16)}${s.module ? ` [${s.module}]` : ''}`;
  }

  /** Address (low 52 bits) of a function, or undefined. */
  find(name: string): number | undefined {
    for (const [key, s] of this.byAddr) if (s.name === name) return key;
    return undefined;
  }
}
