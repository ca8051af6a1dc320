// Kernel: callbacks named by the kernel itself (bpf/symbols.bpf.c, %pS) read
// the same as the index of /proc/kallsyms, for symbols at their start, inside
// them, in modules, and where no symbol is; and a trace names through it
// without reading the file's names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Kallsyms } from '../../src/host/kallsyms';
import { key52FromHex } from '../../src/base/address';
import { bpfSymbolNamer } from '../../src/kernel/symbol-namer';
import { skipUnlessKernel } from '../helpers';

/** Text symbols alone at their address (the kernel and the index could pick different aliases otherwise), BPF programs' among them. */
function loneTextSymbols(): { hex: string; name: string; module: string | null }[] {
  const byAddr = new Map<string, { hex: string; name: string; module: string | null }[]>();
  for (const line of fs.readFileSync('/proc/kallsyms', 'latin1').split('\n')) {
    const m = /^([0-9a-f]{16}) [tT] (\S+)(?:\t\[(\S+)\])?$/.exec(line);
    // ftrace's trampolines are listed as a pseudo-module (__builtin__ftrace) that %pS does not look in: never a timer callback
    if (!m || m[2].startsWith('__pfx_') || m[2].startsWith('__cfi_') || m[3]?.startsWith('__builtin__')) continue;
    const at = byAddr.get(m[1]) ?? [];
    at.push({ hex: m[1], name: m[2], module: m[3] ?? null });
    byAddr.set(m[1], at);
  }
  return [...byAddr.values()].filter((s) => s.length === 1).map((s) => s[0]);
}

test('the kernel names addresses as the kallsyms index does: starts, offsets, modules, and none', (t) => {
  if (skipUnlessKernel(t)) return;
  const namer = bpfSymbolNamer();
  assert.ok(namer.works(), 'the symbols program loads and runs on this kernel (6.x)');
  const lone = loneTextSymbols();
  // 150 spread over the kernel's text, and every module's first 20
  const step = Math.max(1, Math.floor(lone.length / 150));
  const picked = [...lone.filter((_s, i) => i % step === 0), ...lone.filter((s) => s.module).slice(0, 20)];
  assert.ok(picked.length >= 100, `${picked.length} symbols picked`);
  const keys = picked.flatMap((s) => [key52FromHex(s.hex), key52FromHex(s.hex) + 4]);
  keys.push(0x123); // far below any kernel text: no symbol
  const named = namer.name(keys);
  assert.ok(named, 'named in batches of 64');
  const file = Kallsyms.load();
  let differ = 0;
  const examples: string[] = [];
  for (const k of keys) {
    const want = file.resolve(k);
    if (named.get(k) !== want) {
      differ++;
      if (examples.length < 5) examples.push(`${k.toString(16)}: kernel ${named.get(k)}, index ${want}`);
    }
  }
  // a symbol shorter than 4 bytes makes +4 land in the next one: the two still agree
  assert.equal(differ, 0, `${differ} of ${keys.length} differ: ${examples.join('; ')}`);
  assert.equal(named.get(0x123), null);
  const mod = picked.find((s) => s.module);
  if (mod) assert.equal(named.get(key52FromHex(mod.hex)), `${mod.name} [${mod.module}]`);
  else t.diagnostic('no module symbols on this kernel: module names not compared');
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
