// Unit: command-line value parsers, capability parsing, kallsyms parsing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCpuList, parseDurationMs, parseIntInRange } from '../../../src/base/options';
import { bpfRefusalHints, effectiveCaps, missingCaps, requireKernelBtf, requireTracingCaps, seccompMode } from '../../../src/host/caps';
import { Kallsyms } from '../../../src/host/kallsyms';
import { key52FromHex } from '../../../src/base/address';
import { UsageError, EnvironmentError } from '../../../src/base/errors';
import { readStealNs } from '../../../src/host/steal';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tmpFile } from '../../helpers';
import { napiThreads } from '../../../src/host/net';
import { fromPercentS } from '../../../src/kernel/symbol-namer';

test('durations', () => {
  assert.equal(parseDurationMs('10s'), 10_000);
  assert.equal(parseDurationMs('500ms'), 500);
  assert.equal(parseDurationMs('2m'), 120_000);
  assert.equal(parseDurationMs('1.5'), 1500);
  for (const bad of ['banana', '', '10x', '-1s', '0s', '8d'])
    assert.throws(
      () => parseDurationMs(bad),
      (e: Error) => e instanceof UsageError && e.message.startsWith('--duration'),
    );
});

test('CPU lists', () => {
  assert.deepEqual(parseCpuList('0,2-3', 4), [0, 2, 3]);
  assert.deepEqual(parseCpuList('1', 2), [1]);
  assert.throws(() => parseCpuList('2', 2), /CPU 2 does not exist; this machine has CPUs 0-1/);
  assert.throws(() => parseCpuList('3-1', 4), /runs backwards/);
  assert.throws(() => parseCpuList('a', 4), UsageError);
});

test('integers in range', () => {
  assert.equal(parseIntInRange('8', '--ring-mb', 1, 1024), 8);
  assert.throws(() => parseIntInRange('0', '--ring-mb', 1, 1024), /--ring-mb: 0 is out of range/);
  assert.throws(() => parseIntInRange('1.5', '--ring-mb', 1, 1024), /not a whole number/);
});

test('capabilities from /proc/self/status', () => {
  const status = (hex: string) => `Name:\tnode\nCapEff:\t${hex}\n`;
  assert.deepEqual(missingCaps(effectiveCaps(status('000001ffffffffff'))), []);
  assert.deepEqual(missingCaps(effectiveCaps(status('0000000000000000'))), ['CAP_BPF', 'CAP_PERFMON']);
  assert.deepEqual(missingCaps(effectiveCaps(status('000000c000000000'))), []); // BPF + PERFMON
  assert.deepEqual(missingCaps(effectiveCaps(status('0000000000200000'))), []); // SYS_ADMIN
  assert.equal(seccompMode('CapEff:\t0\nSeccomp:\t2\nSeccomp_filters:\t1\n'), 2);
  assert.equal(seccompMode('Seccomp:\t0\n'), 0);
  // what an EPERM from the kernel is blamed on
  const limits = (v: string) => `Limit Soft Limit Hard Limit Units\nMax locked memory         ${v}              ${v}              bytes\n`;
  const plain = 'Seccomp:\t0\n';
  assert.match(
    bpfRefusalHints('EPERM', 'Seccomp:\t2\n', '6.18.0', limits('8388608')).join('\n'),
    /^a seccomp filter is on this process.*deploy\/podman\/seccomp\.json/,
  );
  assert.match(bpfRefusalHints('EPERM', plain, '5.10.0-32-amd64', limits('8388608')).join('\n'), /^kernels before 5\.11 .*8388608 bytes here.*memlock=-1/);
  assert.deepEqual(bpfRefusalHints('EPERM', plain, '5.10.0-32-amd64', limits('unlimited')), bpfRefusalHints('EPERM', plain, '6.1.0', limits('8388608')));
  assert.match(bpfRefusalHints('EPERM', plain, '6.1.0', limits('8388608'))[0], /^the kernel refused: check capabilities/);
  // EACCES is the verifier, not a filter or a limit
  assert.deepEqual(bpfRefusalHints('EACCES', 'Seccomp:\t2\n', '5.10.0', limits('8388608')), bpfRefusalHints('EPERM', plain, '6.1.0', limits('8388608')));
  assert.throws(
    () => requireTracingCaps(status('0000004000000000')),
    (e: Error) => e instanceof EnvironmentError && /^missing capability CAP_BPF: .*--cap-add=BPF,PERFMON/.test(e.message),
  );
});

test('kallsyms: exact, nearest, modules, hidden addresses', () => {
  const k = new Kallsyms(
    [
      'ffffffff8150e1f0 t __pfx_bpf_timer_cb',
      'ffffffff8150e200 t bpf_timer_cb',
      'ffffffff8150e400 T tick_nohz_handler',
      'ffffffffc0a01000 t estimation_timer\t[ip_vs]',
      'ffffffff82000000 D some_data',
    ].join('\n'),
  );
  assert.equal(k.resolve(key52FromHex('ffffffff8150e200')), 'bpf_timer_cb');
  assert.equal(k.resolve(key52FromHex('ffffffff8150e210')), 'bpf_timer_cb+0x10');
  assert.equal(k.resolve(key52FromHex('ffffffffc0a01000')), 'estimation_timer [ip_vs]');
  assert.equal(k.find('estimation_timer'), key52FromHex('ffffffffc0a01000'));
  assert.equal(k.find('some_data'), undefined, 'data symbols are not callbacks');
  assert.equal(k.hidden, false);
  const hidden = new Kallsyms('0000000000000000 t bpf_timer_cb\n0000000000000000 T foo\n');
  assert.equal(hidden.hidden, true);
  assert.equal(hidden.resolve(1234), null);
});

test('kallsyms: the file is read once, and again only when a lookup misses after a module loaded', () => {
  let text = 'ffffffff8150e200 t bpf_timer_cb\nffffffff8150e400 T tick_nohz_handler\n';
  let modules = 'nf_conntrack 1 0 - Live 0x0\n';
  let reads = 0;
  let now = 0;
  const k = new Kallsyms(
    () => {
      reads++;
      return [text];
    },
    () => modules,
    () => now,
  );
  k.resolveAll([key52FromHex('ffffffff8150e200'), key52FromHex('ffffffff8150e410')]);
  const built = reads;
  assert.equal(k.resolve(key52FromHex('ffffffff8150e410')), 'tick_nohz_handler+0x10');
  k.resolveAll([key52FromHex('ffffffff8150e204')]);
  assert.equal(reads, built, 'the index serves every later lookup: no read');
  assert.equal(k.indexBuilds, 1);
  // ip_vs loads: its symbol is not known until the index is built again
  text += 'ffffffffc0a01000 t estimation_timer\t[ip_vs]\n';
  const est = key52FromHex('ffffffffc0a01000');
  now = 6000;
  assert.equal(k.resolve(est), null, '/proc/modules has not changed: no reload');
  assert.equal(k.indexBuilds, 1);
  modules += 'ip_vs 1 0 - Live 0x0\n';
  now = 8000;
  assert.equal(k.resolve(est), null, 'checked less than 5 s ago: no look yet');
  now = 12000;
  assert.equal(k.resolve(est), 'estimation_timer [ip_vs]');
  assert.equal(k.indexBuilds, 2);
  assert.ok(reads > built, 'read again for the module');
});

test('kallsyms: a file of many chunks is indexed whole (first, middle and last symbols; modules)', () => {
  const file = tmpFile('kallsyms');
  const lines: string[] = [];
  // ~1.6 MB: seven 256 KiB reads; addresses out of order (modules come last), as in the real file
  for (let i = 0; i < 40_000; i++) lines.push(`ffffffff81${(0x100000 + i * 16).toString(16).padStart(6, '0')} t fn_${i}`);
  lines.push('ffffffffc0a01000 t estimation_timer\t[ip_vs]', 'ffffffff80000000 T first_text');
  fs.writeFileSync(file, lines.join('\n') + '\n');
  const k = Kallsyms.load(file);
  assert.equal(k.resolve(key52FromHex('ffffffff81100000')), 'fn_0');
  assert.equal(k.resolve(key52FromHex('ffffffff81138800')), 'fn_14464');
  assert.equal(k.resolve(key52FromHex('ffffffff8119c3f4')), 'fn_39999+0x4');
  assert.equal(k.resolve(key52FromHex('ffffffffc0a01000')), 'estimation_timer [ip_vs]');
  assert.equal(k.resolve(key52FromHex('ffffffff80000010')), 'first_text+0x10');
  assert.equal(k.indexBuilds, 1);
});

test('kallsyms: the index built in a worker thread names the same symbols, and no lookup builds it again', async () => {
  const file = tmpFile('kallsyms');
  const lines: string[] = [];
  for (let i = 0; i < 40_000; i++) lines.push(`ffffffff81${(0x100000 + i * 16).toString(16).padStart(6, '0')} t fn_${i}`);
  lines.push('ffffffffc0a01000 t estimation_timer\t[ip_vs]');
  fs.writeFileSync(file, lines.join('\n') + '\n');
  const k = Kallsyms.load(file);
  k.buildInBackground();
  const until = Date.now() + 10_000;
  while (k.indexBuilds === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  assert.equal(k.indexBuilds, 1, 'the worker delivered an index within 10 s');
  assert.equal(k.resolve(key52FromHex('ffffffff81138800')), 'fn_14464');
  assert.equal(k.resolve(key52FromHex('ffffffffc0a01000')), 'estimation_timer [ip_vs]');
  assert.equal(k.resolve(key52FromHex('ffffffff8119c3f4')), 'fn_39999+0x4');
  assert.equal(k.indexBuilds, 1, "lookups used the worker's index");
});

test('a kernel without BTF is one clear line, not a stack trace', () => {
  assert.throws(
    () => requireKernelBtf('/nonexistent/btf/vmlinux'),
    (e: Error) =>
      e instanceof EnvironmentError &&
      /this kernel has no BTF \(\/nonexistent\/btf\/vmlinux is missing; .*CONFIG_DEBUG_INFO_BTF=y/.test(e.message) &&
      !e.message.includes('\n'),
  );
});

test('steal per CPU from /proc/stat, in ns', () => {
  const stat = [
    'cpu  86377 0 33656 165807 1390 0 13091 14357 0 0',
    'cpu0 43000 0 16000 80000 700 0 6500 7100 0 0',
    'cpu1 43377 0 17656 85807 690 0 6591 7257 0 0',
    'intr 123 4 5',
  ].join('\n');
  assert.deepEqual(readStealNs(stat), [71e9, 72.57e9]);
  assert.deepEqual(readStealNs('cpu  1 2 3\n'), []);
});

test("NAPI poll threads are found among kthreadd's children, or among all processes without that file", () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'jitterscope-proc-'));
  try {
    for (const [pid, comm] of [
      [2, 'kthreadd'],
      [300, 'napi/eth0-8193'],
      [77, 'ksoftirqd/1'],
      [299, 'napi/eth0-8194'],
      [4000, 'napi/fake'],
    ] as const) {
      fs.mkdirSync(path.join(root, String(pid)));
      fs.writeFileSync(path.join(root, String(pid), 'comm'), comm + '\n');
    }
    // without the children file: every process (a user process may be named napi/ too: it is listed, harmlessly)
    assert.deepEqual(
      napiThreads(root).map((t) => t.pid),
      [299, 300, 4000],
    );
    fs.mkdirSync(path.join(root, '2/task/2'), { recursive: true });
    fs.writeFileSync(path.join(root, '2/task/2/children'), '77 299 300 ');
    assert.deepEqual(napiThreads(root), [
      { pid: 299, comm: 'napi/eth0-8194' },
      { pid: 300, comm: 'napi/eth0-8193' },
    ]);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test("the kernel's %pS text reads as the index's names", () => {
  assert.equal(fromPercentS('bpf_timer_cb+0x0/0x80'), 'bpf_timer_cb');
  assert.equal(fromPercentS('estimation_timer+0x0/0x1a0 [ip_vs]'), 'estimation_timer [ip_vs]');
  assert.equal(fromPercentS('schedule+0x8/0xc0'), 'schedule+0x8');
  assert.equal(fromPercentS('ip_vs_in+0x1f/0x500 [ip_vs]'), 'ip_vs_in+0x1f [ip_vs]');
  assert.equal(fromPercentS('0xffffffffc0a01000'), null, 'no symbol: the kernel prints the address');
  assert.equal(fromPercentS('far_away+0x200000/0x300000'), null, 'a megabyte past a symbol is not a function offset');
  assert.equal(fromPercentS(''), null);
  // BPF code (bpf_jit_kallsyms=1): %pS gives no module, the index lists it in [bpf]; both read as the index does
  assert.equal(fromPercentS('bpf_prog_a7435712ffcbc4e0_name_symbols+0x0/0x1b4'), 'bpf_prog_a7435712ffcbc4e0_name_symbols [bpf]');
  assert.equal(fromPercentS('bpf_prog_a7435712ffcbc4e0_watch_ends+0x10/0x90'), 'bpf_prog_a7435712ffcbc4e0_watch_ends+0x10 [bpf]');
  assert.equal(fromPercentS('bpf_prog_6deef7357e7b4530+0x4/0x40'), 'bpf_prog_6deef7357e7b4530+0x4 [bpf]');
  assert.equal(fromPercentS('bpf_trampoline_6442501543+0x0/0x1000'), 'bpf_trampoline_6442501543 [bpf]');
  // the kernel's own functions named bpf_prog_* are vmlinux text, no module
  assert.equal(fromPercentS('bpf_prog_run_generic_xdp+0x8/0x400'), 'bpf_prog_run_generic_xdp+0x8');
});
