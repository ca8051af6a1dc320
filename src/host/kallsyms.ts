// Kernel symbol lookup from /proc/kallsyms: names timer callbacks and tells
// whether a function (estimation_timer, ...) exists on this kernel.
//
// The file has ~120k lines (5 MB); parsing it into a map costs ~40 MB and
// ~120 ms, and even holding its text costs ~25 MB of RSS once read. So nothing
// is kept: the file is streamed in 256 KiB chunks and scanned only for the
// addresses asked for, once per batch of new addresses, with results cached.
import fs from 'node:fs';

const TWO32 = 4294967296;

/** Low 52 bits of a 64-bit kernel address given as 16 hex digits (the event key form). */
export function key52FromHex(hex: string): number {
  const h = hex.padStart(16, '0');
  return parseInt(h.slice(8), 16) + (parseInt(h.slice(0, 8), 16) & 0xfffff) * TWO32;
}

interface Line {
  key: number;
  name: string;
  module: string | null;
}

/** Calls fn for every text symbol line ("ffffffff8150e200 t bpf_timer_cb [mod]"). */
function eachTextSymbol(text: string, fn: (key: number, at: number) => void): void {
  let at = 0;
  while (at < text.length) {
    let end = text.indexOf('\n', at);
    if (end < 0) end = text.length;
    if (end - at > 19 && text.charCodeAt(at + 16) === 32) {
      const t = text[at + 17];
      if ((t === 't' || t === 'T' || t === 'w' || t === 'W') && !text.startsWith('__pfx_', at + 19) && !text.startsWith('__cfi_', at + 19))
        fn(key52FromHex(text.slice(at, at + 16)), at);
    }
    at = end + 1;
  }
}

function lineAt(text: string, at: number): Line {
  let end = text.indexOf('\n', at);
  if (end < 0) end = text.length;
  const rest = text.slice(at + 19, end);
  const tab = rest.indexOf('\t');
  return {
    key: key52FromHex(text.slice(at, at + 16)),
    name: tab < 0 ? rest : rest.slice(0, tab),
    module: tab < 0 ? null : rest.slice(tab + 1).replace(/^\[|\]$/g, ''),
  };
}

// further than this from a symbol is not a function offset
const MAX_OFFSET = 1 << 20;

/** Text in chunks that each end at a line boundary. */
export type KallsymsSource = () => Iterable<string>;

function* fileChunks(path: string): Generator<string> {
  const fd = fs.openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(256 * 1024);
    let carry = '';
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      const text = carry + buf.toString('latin1', 0, n);
      const cut = text.lastIndexOf('\n') + 1;
      carry = text.slice(cut);
      if (cut) yield text.slice(0, cut);
    }
    if (carry) yield carry;
  } finally {
    fs.closeSync(fd);
  }
}

export class Kallsyms {
  private readonly cache = new Map<number, string | null>();
  /** True when every address reads as zero (kernel.kptr_restrict, or no CAP_SYSLOG). */
  readonly hidden: boolean;

  private readonly source: KallsymsSource;

  /** From the text itself (tests) or a source of chunks (the file). */
  constructor(source: string | KallsymsSource) {
    this.source = typeof source === 'string' ? () => [source] : source;
    let seen = 0;
    let nonzero = 0;
    for (const chunk of this.source()) {
      eachTextSymbol(chunk, (key) => {
        seen++;
        if (key) nonzero++;
      });
      break; // the first chunk tells
    }
    this.hidden = seen > 0 && nonzero === 0;
  }

  /** Throws (ENOENT, EACCES) at once if the file cannot be read. */
  static load(path = '/proc/kallsyms'): Kallsyms {
    fs.accessSync(path, fs.constants.R_OK);
    return new Kallsyms(() => fileChunks(path));
  }

  /** The symbol starting at `key` ("name" or "name [module]"), else the nearest below as name+0xoff. */
  resolve(key: number): string | null {
    if (!this.cache.has(key)) this.resolveAll([key]);
    return this.cache.get(key) ?? null;
  }

  /** Resolves every uncached key in one pass over the text. */
  resolveAll(keys: Iterable<number>): void {
    const want = [...new Set(keys)].filter((k) => !this.cache.has(k)).sort((a, b) => a - b);
    if (!want.length) return;
    if (this.hidden) {
      for (const k of want) this.cache.set(k, null);
      return;
    }
    // best[j]: the highest symbol address <= want[j] seen so far, and its line
    const best = new Float64Array(want.length).fill(-1);
    const bestLine: (Line | undefined)[] = new Array(want.length);
    for (const chunk of this.source()) eachTextSymbol(chunk, (addr, at) => {
      let lo = 0;
      let hi = want.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (want[mid] < addr) lo = mid + 1;
        else hi = mid;
      }
      // lo: first wanted key >= addr; later keys inherit via the prefix pass below
      if (lo < want.length && addr > best[lo]) {
        best[lo] = addr;
        bestLine[lo] = lineAt(chunk, at);
      }
    });
    for (let j = 1; j < want.length; j++)
      if (best[j - 1] > best[j]) {
        best[j] = best[j - 1];
        bestLine[j] = bestLine[j - 1];
      }
    want.forEach((k, j) => {
      const s = bestLine[j];
      if (!s || !k) return this.cache.set(k, null);
      const off = k - s.key;
      const mod = s.module ? ` [${s.module}]` : '';
      this.cache.set(k, off === 0 ? `${s.name}${mod}` : off < MAX_OFFSET ? `${s.name}+0x${off.toString(16)}${mod}` : null);
    });
  }

  /** Whether a text symbol of this name is visible (false when addresses are hidden). */
  has(name: string): boolean {
    return !this.hidden && this.find(name) !== undefined;
  }

  /** Address (low 52 bits) of a text symbol, or undefined. */
  find(name: string): number | undefined {
    const re = new RegExp(`^([0-9a-f]{16}) [tTwW] ${name.replace(/[^\w.]/g, '\\$&')}(\\t|$)`, 'm');
    for (const chunk of this.source()) {
      const m = re.exec(chunk);
      if (m) return key52FromHex(m[1]);
    }
    return undefined;
  }
}

/** The kernel's symbols, or why they cannot be used (a note for the user). */
export function loadKallsyms(): { kallsyms: Kallsyms | undefined; note: string | null } {
  try {
    const kallsyms = Kallsyms.load();
    return {
      kallsyms,
      note: kallsyms.hidden ? '/proc/kallsyms hides addresses (kernel.kptr_restrict, or no CAP_SYSLOG): timer callbacks are shown as addresses' : null,
    };
  } catch (e) {
    return { kallsyms: undefined, note: `cannot read /proc/kallsyms (${(e as Error).message}): timer callbacks are shown as addresses` };
  }
}
