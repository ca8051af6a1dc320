// Kernel addresses named by the kernel: bpf/symbols.bpf.c formats each with
// bpf_snprintf's %pS, a lookup in kallsyms' sorted table, so naming the few
// timer callbacks of a trace costs one small program load (0.2-0.8 ms) instead of
// reading and indexing all of /proc/kallsyms (~90 ms, 40 of them the kernel
// making the text). host/kallsyms.ts asks this first and reads the file where
// the kernel refuses the program (before 5.14: no syscall programs).
import { MAX_OFFSET, SymbolNamer, symbolName } from '../host/kallsyms';
import { loadObject } from './loader';

/** Addresses per load: the program's JS_NAME_BATCH and JS_NAME_LEN. */
const BATCH = 64;
const NAME_LEN = 128;
/** Kernel text lies in the top of the address space: its high 12 bits are set (x86_64, arm64). */
const KERNEL_HIGH = 0xfffn << 52n;

/**
 * The names the kernel gives BPF code it lists (net.core.bpf_jit_kallsyms=1):
 * a program or subprogram (bpf_prog_<tag> and its name or function name) and
 * a trampoline (bpf_trampoline_<key>). /proc/kallsyms lists them in the
 * pseudo-module [bpf]; %pS names them with no module.
 */
const BPF_KSYM = /^bpf_prog_[0-9a-f]{16}(?:_\w+)?$|^bpf_trampoline_\d+$/;

/**
 * %pS's text in the index's form: "name" or "name [module]" at a symbol's
 * start, "name+0xoff" (and module) inside it; null where no symbol covers the
 * address (the kernel then prints the address itself). BPF code reads as the
 * index lists it: "bpf_prog_<tag>_<name> [bpf]".
 */
export function fromPercentS(text: string): string | null {
  const m = /^([^\s+]+)\+0x([0-9a-f]+)\/0x[0-9a-f]+(?: \[([^\]]+)\])?$/.exec(text);
  if (!m) return null;
  const off = parseInt(m[2], 16);
  const module = m[3] ?? (BPF_KSYM.test(m[1]) ? 'bpf' : null);
  return off < MAX_OFFSET ? symbolName(m[1], off, module) : null;
}

/**
 * A namer that loads the symbols program per batch of addresses (keys are
 * the low 52 bits, as events carry them). Returns null for the whole call when
 * the kernel refuses the program; the caller then reads /proc/kallsyms.
 */
export function bpfSymbolNamer(): SymbolNamer & { refusal(): string | null } {
  let works: boolean | undefined;
  let refusal: string | null = null;
  /** One load and run: the names of up to BATCH keys, or null if the kernel refused. */
  const run = (batch: number[]): (string | null)[] | null => {
    const addrs = Buffer.alloc(BATCH * 8);
    batch.forEach((k, i) => addrs.writeBigUInt64LE(KERNEL_HIGH | BigInt(k), i * 8));
    const count = Buffer.alloc(4);
    count.writeUInt32LE(batch.length);
    let names: Buffer | null;
    try {
      const obj = loadObject({ object: 'symbols', globals: { name_addrs: addrs, name_count: count } });
      try {
        obj.testRun('name_symbols');
        names = obj.lookup('.bss', Buffer.alloc(4));
      } finally {
        obj.close();
      }
    } catch (e) {
      names = null;
      refusal = (e as Error).message.split('\n')[0];
    }
    works = names !== null;
    if (!names) {
      refusal ??= 'its .bss could not be read';
      return null;
    }
    const got = names;
    return batch.map((k, i) => {
      const raw = got.subarray(i * NAME_LEN, (i + 1) * NAME_LEN);
      const end = raw.indexOf(0);
      return k ? fromPercentS(raw.toString('latin1', 0, end < 0 ? raw.length : end)) : null;
    });
  };
  return {
    works: () => works ?? run([]) !== null,
    /** Why the kernel refused the program (after works() or name() said so). */
    refusal: () => refusal,
    name(keys) {
      if (works === false) return null;
      const out = new Map<number, string | null>();
      for (let at = 0; at < keys.length; at += BATCH) {
        const batch = keys.slice(at, at + BATCH);
        const names = run(batch);
        if (!names) return null;
        batch.forEach((k, i) => out.set(k, names[i]));
      }
      return out;
    },
  };
}
