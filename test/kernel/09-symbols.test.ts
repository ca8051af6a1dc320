// Kernel: callbacks named by the kernel itself (bpf/symbols.bpf.c, %pS) read
// the same as the index of /proc/kallsyms, for symbols at their start, inside
// them, in modules, and where no symbol is, with net.core.bpf_jit_kallsyms at
// 0 and at 1; BPF programs (listed in [bpf] at 1) are tested apart, loaded for
// the test and named while loaded; and a trace names through the kernel
// without reading the file's names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Kallsyms } from '../../src/host/kallsyms';
import { key52FromHex } from '../../src/base/address';
import { bpfSymbolNamer } from '../../src/kernel/symbol-namer';
import { loadObject } from '../../src/kernel/loader';
import { skipIf, skipUnlessKernel } from '../helpers';

const SYSCTL = '/proc/sys/net/core/bpf_jit_kallsyms';

interface Sym {
  hex: string;
  name: string;
  module: string | null;
}

/** Every text symbol in /proc/kallsyms, bar the pfx/cfi stubs. */
function textSymbols(): Sym[] {
  const out: Sym[] = [];
  for (const line of fs.readFileSync('/proc/kallsyms', 'latin1').split('\n')) {
    const m = /^([0-9a-f]{16}) [tT] (\S+)(?:\t\[(\S+)\])?$/.exec(line);
    if (!m || m[2].startsWith('__pfx_') || m[2].startsWith('__cfi_')) continue;
    out.push({ hex: m[1], name: m[2], module: m[3] ?? null });
  }
  return out;
}

/** Symbols alone at their address (the kernel and the index could pick different aliases otherwise). */
function lone(syms: Sym[]): Sym[] {
  const n = new Map<string, number>();
  for (const s of syms) n.set(s.hex, (n.get(s.hex) ?? 0) + 1);
  return syms.filter((s) => n.get(s.hex) === 1);
}

/**
 * Addresses that cannot move between the reads: the kernel's text and its
 * modules'. BPF code ([bpf]: a program freed between two reads leaves its
 * address to the next one loaded) and ftrace's trampolines (a pseudo-module,
 * __builtin__ftrace, that %pS does not look in: never a timer callback) are
 * left out.
 */
const stable = (s: Sym) => s.module !== 'bpf' && !s.module?.startsWith('__builtin__');

/** Each key named by the kernel and by an index read now: the keys where they differ. */
function compare(keys: number[]): { differ: string[]; named: Map<number, string | null> } {
  const named = bpfSymbolNamer().name(keys);
  assert.ok(named, 'named in batches of 64');
  const file = Kallsyms.load();
  const differ: string[] = [];
  for (const k of keys) {
    const want = file.resolve(k);
    if (named.get(k) !== want) differ.push(`${k.toString(16)}: kernel ${named.get(k)}, index ${want}`);
  }
  return { differ, named };
}

/** Runs `body` with the sysctl at `value`, restoring it after. */
function withJitKallsyms<T>(value: 0 | 1, body: () => T): T {
  const was = fs.readFileSync(SYSCTL, 'utf8').trim();
  fs.writeFileSync(SYSCTL, String(value));
  try {
    return body();
  } finally {
    fs.writeFileSync(SYSCTL, was);
    assert.equal(fs.readFileSync(SYSCTL, 'utf8').trim(), was, 'bpf_jit_kallsyms restored');
  }
}

const noSysctl = () => (fs.existsSync(SYSCTL) ? null : `${SYSCTL} is missing (a kernel without the BPF JIT)`);

for (const setting of [0, 1] as const)
  test(`with bpf_jit_kallsyms=${setting} the kernel names addresses as the kallsyms index does: starts, offsets, modules, and none`, (t) => {
    if (skipUnlessKernel(t) || skipIf(t, noSysctl())) return;
    withJitKallsyms(setting, () => {
      assert.ok(bpfSymbolNamer().works(), 'the symbols program loads and runs on this kernel (6.x)');
      const syms = lone(textSymbols().filter(stable));
      // 150 spread over the kernel's text, and every module's first 20
      const step = Math.max(1, Math.floor(syms.length / 150));
      const picked = [...syms.filter((_s, i) => i % step === 0), ...syms.filter((s) => s.module).slice(0, 20)];
      assert.ok(picked.length >= 100, `${picked.length} symbols picked`);
      const keys = picked.flatMap((s) => [key52FromHex(s.hex), key52FromHex(s.hex) + 4]);
      keys.push(0x123); // far below any kernel text: no symbol
      const { differ, named } = compare(keys);
      // a symbol shorter than 4 bytes makes +4 land in the next one: the two still agree
      assert.deepEqual(differ.slice(0, 5), [], `${differ.length} of ${keys.length} differ`);
      assert.equal(named.get(0x123), null);
      const mod = picked.find((s) => s.module);
      if (mod) assert.equal(named.get(key52FromHex(mod.hex)), `${mod.name} [${mod.module}]`);
      else t.diagnostic('no module symbols on this kernel: module names not compared');
    });
  });

test('BPF programs, loaded for the test and named while loaded, read the same from both namers at bpf_jit_kallsyms=1, and are not listed at 0', (t) => {
  if (skipUnlessKernel(t) || skipIf(t, noSysctl())) return;
  // the tracer's programs (the tp_btf family, loaded, not attached): what a BPF culprit looks like
  const load = () => loadObject({ object: 'tracer', autoload: (p) => p.startsWith('js_') });
  const bpfNow = () =>
    new Set(
      textSymbols()
        .filter((s) => s.module === 'bpf')
        .map((s) => `${s.hex} ${s.name}`),
    );
  withJitKallsyms(1, () => {
    const before = bpfNow();
    const obj = load();
    try {
      const mine = lone(textSymbols()).filter((s) => s.module === 'bpf' && !before.has(`${s.hex} ${s.name}`));
      assert.ok(mine.length >= 5, `the tracer's programs are listed in [bpf] while loaded: ${mine.length}`);
      for (const s of mine) assert.match(s.name, /^bpf_prog_[0-9a-f]{16}_\w+$/, 'a program or subprogram by its tag and name');
      assert.ok(
        mine.some((s) => s.name.endsWith('_js_sched_switch')),
        `a program by its name: ${mine
          .slice(0, 5)
          .map((s) => s.name)
          .join(', ')}`,
      );
      const keys = mine.flatMap((s) => [key52FromHex(s.hex), key52FromHex(s.hex) + 4]);
      const { differ, named } = compare(keys);
      assert.deepEqual(differ.slice(0, 5), [], `${differ.length} of ${keys.length} differ`);
      for (const s of mine) assert.equal(named.get(key52FromHex(s.hex)), `${s.name} [bpf]`);
    } finally {
      obj.close();
    }
  });
  withJitKallsyms(0, () => {
    const before = bpfNow();
    const obj = load();
    try {
      const listed = [...bpfNow()].filter((s) => !before.has(s) && s.includes('_js_'));
      assert.deepEqual(listed, [], 'no program loaded at bpf_jit_kallsyms=0 is listed');
    } finally {
      obj.close();
    }
  });
});

test('a Kallsyms with the kernel namer answers without building the index', (t) => {
  if (skipUnlessKernel(t)) return;
  const k = Kallsyms.load();
  k.useNamer(bpfSymbolNamer());
  const sched = k.find('schedule');
  assert.ok(sched !== undefined, 'schedule is in /proc/kallsyms');
  assert.equal(k.resolve(sched), 'schedule');
  assert.equal(k.resolve(sched + 8), 'schedule+0x8');
  assert.equal(k.indexBuilds, 0, 'the file was not indexed');
  k.buildInBackground();
  assert.equal(k.indexBuilds, 0, 'no worker either: the namer works here');
});
