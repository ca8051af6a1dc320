// An index of /proc/kallsyms' text symbols (host/kallsyms.ts builds it once,
// at its first lookup): addresses, names and modules in typed arrays and one
// byte buffer, from the file's bytes, read once, in two passes.
import { key52 } from '../base/address';

/** Text in chunks that each end at a line boundary: strings (tests) or the file's bytes. */
export type KallsymsSource = () => Iterable<string | Buffer>;

/**
 * Text symbols: symbol i starts at `addrs[i]`, its name is
 * `blob[nameAt[i] .. nameAt[i] + nameLen[i])`, its module
 * `modules[moduleOf[i] - 1]` (0: none); `order` lists them by address. Bytes
 * and typed arrays sized exactly by a first pass, not strings: the index keeps
 * ~2.5 MB and allocates no JS string per symbol (an index of strings held
 * 8.6 MB of heap and grew RSS by 39 MB).
 */
export interface SymbolIndex {
  order: Uint32Array;
  addrs: Float64Array;
  nameAt: Uint32Array;
  nameLen: Uint16Array;
  moduleOf: Uint16Array;
  blob: Buffer;
  modules: string[];
}

const HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 16; i++) HEX['0123456789abcdef'.charCodeAt(i)] = i;

function hexAt(b: Buffer, at: number, n: number): number {
  let v = 0;
  for (let i = 0; i < n; i++) v = v * 16 + HEX[b[at + i]];
  return v;
}

/** Whether b holds "__pfx_" or "__cfi_" at `at` (padding and CFI stubs before functions). */
function stubAt(b: Buffer, at: number): boolean {
  if (b[at] !== 95 || b[at + 1] !== 95 || b[at + 5] !== 95) return false;
  const w = b.toString('latin1', at + 2, at + 5);
  return w === 'pfx' || w === 'cfi';
}

/**
 * Calls fn(line start, end of name, end of line) for every text symbol line
 * ("ffffffff8150e200 t bpf_timer_cb\t[mod]"): the one parser of kallsyms lines.
 */
export function eachTextLine(chunks: Buffer[], fn: (b: Buffer, at: number, nameEnd: number, end: number) => void): void {
  for (const b of chunks) {
    let at = 0;
    while (at < b.length) {
      let end = b.indexOf(10, at);
      if (end < 0) end = b.length;
      const t = b[at + 17];
      if (end - at > 19 && b[at + 16] === 32 && (t === 116 || t === 84 || t === 119 || t === 87) && !stubAt(b, at + 19)) {
        // the tab before a module name, looked for within this line only
        let nameEnd = at + 19;
        while (nameEnd < end && b[nameEnd] !== 9) nameEnd++;
        fn(b, at, nameEnd, end);
      }
      at = end + 1;
    }
  }
}

export function buildIndex(source: KallsymsSource): SymbolIndex {
  // the file read once (the kernel spends ~36 ms making its text), held for the two passes
  // (each copied as it comes: the file's chunks are views of one buffer that the next read overwrites)
  const chunks: Buffer[] = [];
  for (const c of source()) chunks.push(typeof c === 'string' ? Buffer.from(c, 'latin1') : Buffer.from(c));
  // first pass: how many, and how many name bytes; second: fill arrays of exactly that size
  let count = 0;
  let bytes = 0;
  eachTextLine(chunks, (_b, at, nameEnd) => {
    count++;
    bytes += Math.min(nameEnd - at - 19, 65535);
  });
  const ix: SymbolIndex = {
    order: new Uint32Array(count),
    addrs: new Float64Array(count),
    nameAt: new Uint32Array(count),
    nameLen: new Uint16Array(count),
    moduleOf: new Uint16Array(count),
    blob: Buffer.alloc(bytes),
    modules: [],
  };
  const modules = new Map<string, number>();
  let n = 0;
  let used = 0;
  eachTextLine(chunks, (b, at, nameEnd, end) => {
    const len = Math.min(nameEnd - at - 19, 65535, bytes - used);
    b.copy(ix.blob, used, at + 19, at + 19 + len);
    ix.addrs[n] = key52(hexAt(b, at, 8), hexAt(b, at + 8, 8));
    ix.nameAt[n] = used;
    ix.nameLen[n] = len;
    used += len;
    if (nameEnd < end) {
      const name = b.toString('latin1', nameEnd + 1, end).replace(/^\[|\]$/g, '');
      ix.moduleOf[n] = modules.get(name) ?? modules.set(name, modules.size + 1).get(name)!;
    }
    n++;
  });
  for (let i = 0; i < count; i++) ix.order[i] = i;
  ix.order.subarray(0, n).sort((x, y) => ix.addrs[x] - ix.addrs[y]);
  ix.order = ix.order.subarray(0, n);
  ix.modules = [...modules.keys()];
  return ix;
}

/** Symbol i's name. */
export function nameAt(ix: SymbolIndex, i: number): string {
  return ix.blob.toString('latin1', ix.nameAt[i], ix.nameAt[i] + ix.nameLen[i]);
}
