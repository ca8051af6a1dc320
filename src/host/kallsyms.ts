// Kernel symbol lookup from /proc/kallsyms: names timer callbacks and tells
// whether a function (estimation_timer, ...) exists on this kernel.
//
// The file has ~120k lines (5 MB); parsing it into a map costs ~40 MB and
// ~120 ms, and even holding its text costs ~25 MB of RSS once read. So the
// file is streamed in 256 KiB chunks, and what is kept is an index of the
// text symbols alone (host/symbol-index.ts: typed arrays and one byte
// buffer, ~2.5 MB). It is built once per process, at the first lookup (not at start-up,
// which only asks whether a few names exist), and built again when an address
// falls where no symbol is known and /proc/modules changed since (a module
// loaded), looked at no more than every RELOAD_MS. Where the kernel can name
// addresses itself (a SymbolNamer: one small BPF program, 5.14+), the file is
// not read for names at all. Otherwise long-running views build
// it in a worker thread right after start (buildInBackground), so their first
// refresh does not stall the main loop while the rings fill.
import fs from 'node:fs';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { key52FromHex } from '../base/address';
import { buildIndex, eachTextLine, KallsymsSource, nameAt, SymbolIndex } from './symbol-index';

export type { KallsymsSource };

/** Further than this from a symbol is not a function offset. */
export const MAX_OFFSET = 1 << 20;

/** A symbol's name as every lookup gives it: "name" or "name [module]" at its start, "name+0xoff" (and module) inside. */
export function symbolName(name: string, off: number, module: string | null): string {
  const mod = module ? ` [${module}]` : '';
  return off === 0 ? `${name}${mod}` : `${name}+0x${off.toString(16)}${mod}`;
}

const asText = (chunk: string | Buffer) => (typeof chunk === 'string' ? chunk : chunk.toString('latin1'));

/** The file in 256 KiB pieces of whole lines, as bytes (each one valid until the next is asked for). */
function* fileChunks(path: string): Generator<Buffer> {
  const fd = fs.openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(256 * 1024);
    let kept = 0; // a partial last line, moved to the front
    for (;;) {
      const n = fs.readSync(fd, buf, kept, buf.length - kept, null);
      if (n <= 0) break;
      const filled = kept + n;
      const cut = buf.lastIndexOf(10, filled - 1) + 1;
      if (cut) yield buf.subarray(0, cut);
      buf.copy(buf, 0, cut, filled);
      kept = filled - cut;
      if (kept === buf.length) throw new Error(`${path}: a line longer than ${buf.length} bytes`);
    }
    if (kept) yield buf.subarray(0, kept);
  } finally {
    fs.closeSync(fd);
  }
}

/** Names from elsewhere than the file: the kernel itself (kernel/symbol-namer.ts). */
export interface SymbolNamer {
  /** Names for addresses (low 52 bits), or null when this way is unavailable. */
  name(keys: number[]): Map<number, string | null> | null;
  /** Whether it works here (tried once). */
  works(): boolean;
}

/** /proc/modules is compared at most this often, on a lookup that missed. */
const RELOAD_MS = 5000;

export class Kallsyms {
  private readonly cache = new Map<number, string | null>();
  private index: SymbolIndex | undefined;
  private modules = '';
  private modulesCheckedAt = 0;
  /** True when every address reads as zero (kernel.kptr_restrict, or no CAP_SYSLOG). */
  readonly hidden: boolean;

  private readonly source: KallsymsSource;
  /** The file, when the index can be built elsewhere (a worker reads it itself). */
  private path: string | undefined;
  private worker: Worker | undefined;
  private namer: SymbolNamer | undefined;

  /** From the text itself (tests) or a source of chunks (the file). */
  constructor(
    source: string | KallsymsSource,
    /** What changes when a module loads or unloads (the text of /proc/modules). */
    private readonly modulesNow: () => string = () => '',
    private readonly now: () => number = Date.now,
  ) {
    this.source = typeof source === 'string' ? () => [source] : source;
    let seen = 0;
    let nonzero = 0;
    for (const chunk of this.source()) {
      // hidden addresses read as sixteen zeros
      eachTextLine([typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk], (b, at) => {
        seen++;
        if (b.toString('latin1', at, at + 16) !== '0000000000000000') nonzero++;
      });
      break; // the first chunk tells
    }
    this.hidden = seen > 0 && nonzero === 0;
  }

  /** Throws (ENOENT, EACCES) at once if the file cannot be read. */
  static load(path = '/proc/kallsyms'): Kallsyms {
    fs.accessSync(path, fs.constants.R_OK);
    const k = new Kallsyms(
      () => fileChunks(path),
      () => {
        try {
          return fs.readFileSync('/proc/modules', 'latin1');
        } catch {
          return '';
        }
      },
    );
    k.path = path;
    return k;
  }

  /** Asks `namer` first; the file is read only if it answers null (it cannot). */
  useNamer(namer: SymbolNamer): void {
    this.namer = namer;
  }

  /**
   * Builds the index in a worker thread (~110 ms, most of it the kernel
   * making the file's text), for a view whose first refresh would otherwise
   * stall the main loop that drains the rings. A lookup before it arrives
   * builds the index itself, and a failed worker only leaves that to it.
   */
  buildInBackground(): void {
    if (this.index || this.worker || this.hidden || !this.path || this.namer?.works()) return;
    const job: IndexJob = { kind: 'jitterscope-kallsyms', path: this.path };
    const w = (this.worker = new Worker(__filename, { workerData: job }));
    w.unref();
    w.once('message', (m: IndexResult) => {
      if (this.index) return;
      this.index = { ...m.index, blob: Buffer.from(m.index.blob.buffer, m.index.blob.byteOffset, m.index.blob.byteLength) };
      this.modules = m.modules;
      this.modulesCheckedAt = this.now();
      this.indexBuilds++;
    });
    w.once('error', () => undefined);
  }

  /** How many times the index was built (once, plus once per module load that a lookup ran into). */
  indexBuilds = 0;

  private ensureIndex(): SymbolIndex {
    if (!this.index) {
      void this.worker?.terminate();
      this.modules = this.modulesNow();
      this.modulesCheckedAt = this.now();
      this.index = buildIndex(this.source);
      this.indexBuilds++;
    }
    return this.index;
  }

  /** The name for `key` from the index: "name [module]", "name+0xoff", or null (no symbol close below). */
  private lookup(ix: SymbolIndex, key: number): string | null {
    let lo = 0;
    let hi = ix.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ix.addrs[ix.order[mid]] <= key) lo = mid + 1;
      else hi = mid;
    }
    if (lo === 0 || !key) return null;
    const i = ix.order[lo - 1];
    const off = key - ix.addrs[i];
    return off < MAX_OFFSET ? symbolName(nameAt(ix, i), off, ix.moduleOf[i] ? ix.modules[ix.moduleOf[i] - 1] : null) : null;
  }

  /** The symbol starting at `key` ("name" or "name [module]"), else the nearest below as name+0xoff. */
  resolve(key: number): string | null {
    if (!this.cache.has(key)) this.resolveAll([key]);
    return this.cache.get(key) ?? null;
  }

  /** Resolves every uncached key from the index (built at the first call). */
  resolveAll(keys: Iterable<number>): void {
    const want = [...new Set(keys)].filter((k) => !this.cache.has(k));
    if (!want.length) return;
    if (this.hidden) {
      for (const k of want) this.cache.set(k, null);
      return;
    }
    // the kernel's own answer is current: no index, no reloads
    const named = this.index ? null : this.namer?.name(want);
    if (named) {
      for (const k of want) this.cache.set(k, named.get(k) ?? null);
      return;
    }
    let ix = this.ensureIndex();
    // an address no symbol explains: a module may have loaded since the index was built
    if (want.some((k) => k && this.lookup(ix, k) === null) && this.now() - this.modulesCheckedAt >= RELOAD_MS) {
      this.modulesCheckedAt = this.now();
      if (this.modulesNow() !== this.modules) {
        this.index = undefined;
        ix = this.ensureIndex();
      }
    }
    for (const k of want) {
      const name = this.lookup(ix, k);
      // an unknown address is not cached: a later reload may name it
      if (name !== null || !k) this.cache.set(k, name);
    }
  }

  /** Whether a text symbol of this name is visible (false when addresses are hidden). */
  has(name: string): boolean {
    return !this.hidden && this.find(name) !== undefined;
  }

  /** Address (low 52 bits) of a text symbol, or undefined. */
  find(name: string): number | undefined {
    const re = new RegExp(`^([0-9a-f]{16}) [tTwW] ${name.replace(/[^\w.]/g, '\\$&')}(\\t|$)`, 'm');
    for (const chunk of this.source()) {
      const m = re.exec(asText(chunk));
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

interface IndexJob {
  kind: 'jitterscope-kallsyms';
  path: string;
}

interface IndexResult {
  /** The blob arrives as a plain Uint8Array (structured clone drops Buffer's prototype). */
  index: Omit<SymbolIndex, 'blob'> & { blob: Uint8Array };
  modules: string;
}

function buildIndexJob(job: IndexJob): void {
  let modules = '';
  try {
    modules = fs.readFileSync('/proc/modules', 'latin1');
  } catch {
    // no modules file: nothing to compare later
  }
  const index = buildIndex(() => fileChunks(job.path));
  const result: IndexResult = { index, modules };
  parentPort!.postMessage(result);
}

if (!isMainThread && (workerData as IndexJob | undefined)?.kind === 'jitterscope-kallsyms') buildIndexJob(workerData);
