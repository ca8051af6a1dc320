// The event ABI seen from both sides: the addon's offsetof table (compiled from
// bpf/jitterscope.h) must equal the TypeScript decoder's offsets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ABI_VERSION,
  EVENT_SIZE,
  MAX_CPUS,
  OFFSETS,
  Kind,
  Flag,
  Func,
  NR_SOFTIRQS,
  HIST_BUCKETS,
  HIST_SUB_BITS,
  HIST_VALUE_BYTES,
  KernelHistIndex,
} from '../../../src/kernel/abi';
import { EventView } from '../../../src/stream/decode';
import { native } from '../../../src/kernel/addon';
import { encode } from '../../encode';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, skipIf } from '../../helpers';

test('addon layout equals the TypeScript decoder', () => {
  const l = native().layout();
  assert.equal(l.abiVersion, ABI_VERSION);
  assert.equal(l.eventSize, EVENT_SIZE);
  assert.equal(l.maxCpus, MAX_CPUS);
  assert.deepEqual(l.offsets, { ...OFFSETS });
  assert.deepEqual(l.kinds, { ...Kind });
  assert.deepEqual(l.flags, { ...Flag });
  assert.equal(l.nrSoftirqs, NR_SOFTIRQS);
  assert.deepEqual(l.funcs, { ...Func });
  assert.deepEqual(
    l.hist,
    { subBits: HIST_SUB_BITS, buckets: HIST_BUCKETS, valueBytes: HIST_VALUE_BYTES, bucketsOffset: 32 },
    'struct js_hist as the kernel-histogram reader expects it',
  );
  assert.deepEqual(l.kernelHists, { ...KernelHistIndex }, 'enum js_kernel_hist as LiveTrace reads run_hists');
});

test('EventView reads every field where the offsets say', () => {
  const buf = encode([
    {
      kind: Kind.PACKET,
      cpu: 513,
      startNs: 2 ** 40 + 7,
      durationNs: 123456789,
      key: 0xffffffffc0a01234n,
      flags: 1,
      pkt: { saddr: '10.1.2.3', daddr: '198.18.0.2', proto: 1, sport: 65535, dport: 258, type: 8, code: 3, arrivalCpu: 7 },
    },
    {
      kind: Kind.PACKET,
      cpu: 1,
      startNs: 5,
      durationNs: 6,
      key: 3n,
      flags: Flag.IPV6 | Flag.SLOW,
      pkt: { saddr: 'fd00::1', daddr: '2001:db8:0:1::ff00:42', proto: 6, sport: 443, dport: 51234, type: 0x18 },
    },
  ]);
  const v = new EventView(buf);
  const w = EventView.base(0);
  assert.equal(v.kind(w), Kind.PACKET);
  assert.equal(v.cpu(w), 513);
  assert.equal(v.startNs(w), 2 ** 40 + 7);
  assert.equal(v.durationNs(w), 123456789);
  assert.equal(v.keyLo(w), 0xc0a01234);
  assert.equal(v.key52(w), 0xfffffc0a01234);
  assert.equal(v.flags(w), 1);
  assert.equal(v.pktSaddr(w, false), '10.1.2.3');
  assert.equal(v.pktDaddr(w, false), '198.18.0.2');
  assert.equal(v.pktSport(w), 65535);
  assert.equal(v.pktDport(w), 258);
  assert.equal(v.pktType(w), 8);
  assert.equal(v.pktCode(w), 3);
  assert.equal(v.pktProto(w), 1);
  assert.equal(v.pktArrivalCpu(w), 7);
  const w2 = EventView.base(1);
  assert.equal(v.flags(w2), Flag.IPV6 | Flag.SLOW);
  assert.equal(v.pktSaddr(w2, true), 'fd00::1');
  assert.equal(v.pktDaddr(w2, true), '2001:db8:0:1::ff00:42');
  assert.equal(v.pktProto(w2), 6);
  assert.equal(v.pktSport(w2), 443);
  assert.equal(v.pktDport(w2), 51234);
});

test('the addon reports no libbpf or libelf as shared libraries', async () => {
  const { spawnSync } = await import('node:child_process');
  const { addonPath } = await import('../../../src/kernel/addon');
  const r = spawnSync('ldd', [addonPath()], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /libbpf|libelf|libz\.|libzstd/);
});

test("the addon is chosen by platform: the prebuilt one, else this checkout's build; elsewhere one line", async () => {
  const { addonPath } = await import('../../../src/kernel/addon');
  // what each file is built for, as its ELF header says
  const built = (table: Record<string, string>) => (file: string) => Object.entries(table).find(([f]) => file.endsWith(f))?.[1] ?? null;
  const both = built({ 'Release/jitterscope.node': 'x64', 'prebuilt/linux-arm64/jitterscope.node': 'arm64' });
  assert.match(addonPath('linux', 'x64', both), /build\/Release\/jitterscope\.node$/);
  assert.match(addonPath('linux', 'arm64', both), /build\/prebuilt\/linux-arm64\/jitterscope\.node$/);
  assert.match(addonPath('linux', 'arm64', built({ 'Release/jitterscope.node': 'arm64' })), /build\/Release\/jitterscope\.node$/, 'built on an arm64 machine');
  assert.throws(
    () => addonPath('linux', 'arm64', built({ 'Release/jitterscope.node': 'x64' })),
    /^Error: no jitterscope addon for linux-arm64|no jitterscope addon for linux-arm64/,
  );
  const { elfArch } = await import('../../../src/kernel/addon');
  assert.equal(elfArch(addonPath()), process.arch, "this build's own addon, read from its ELF header");
  for (const [platform, arch] of [
    ['linux', 'riscv64'],
    ['darwin', 'arm64'],
  ])
    assert.throws(
      () => addonPath(platform, arch, built({ 'Release/jitterscope.node': 'x64' })),
      (e: Error) =>
        e.message.startsWith(`no jitterscope addon for ${platform}-${arch}: the package ships linux-x64 and linux-arm64;`) && !e.message.includes('\n'),
    );
});

test("the feature cache keys on the addon's GNU build id, as readelf reads it", async () => {
  const { addonPath, elfBuildId } = await import('../../../src/kernel/addon');
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync('readelf', ['-n', addonPath()], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const id = /Build ID: ([0-9a-f]+)/.exec(r.stdout)?.[1];
  assert.ok(id, `readelf shows a build id:\n${r.stdout}`);
  assert.equal(elfBuildId(addonPath()), id);
  assert.equal(elfBuildId(path.join(ROOT, 'package.json')), null, 'not an ELF file: none');
});

test('the arm64 addon: an aarch64 shared object needing only libc, with libbpf, libelf, zlib and zstd inside', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const file = path.join(ROOT, 'build', 'prebuilt', 'linux-arm64', 'jitterscope.node');
  if (skipIf(t, fs.existsSync(file) ? null : `${file} is not built (npm test builds it: scripts/build-arm64.sh)`)) return;
  const h = spawnSync('aarch64-linux-gnu-readelf', ['-h', '-d', '-s', '--wide', file], { encoding: 'utf8', maxBuffer: 1 << 26 });
  assert.equal(h.status, 0, h.stderr);
  assert.match(h.stdout, /Machine:\s+AArch64/);
  const needed = [...h.stdout.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]).sort();
  assert.deepEqual(
    needed.filter((l) => !/^(libc\.so\.6|libm\.so\.6|ld-linux-aarch64\.so\.1)$/.test(l)),
    [],
    `needs only libc: ${needed}`,
  );
  assert.match(h.stdout, /\bnapi_register_module_v1\b/, 'a Node-API module');
  assert.match(h.stdout, /\bbpf_object__open_mem\b|\bbpf_object__open_skeleton\b/, 'libbpf linked in');
});
