// The event ABI seen from both sides: the addon's offsetof table (compiled from
// bpf/jitterscope.h) must equal the TypeScript decoder's offsets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ABI_VERSION, EVENT_SIZE, MAX_CPUS, OFFSETS, Kind, Flag, Func, NR_SOFTIRQS } from '../src/kernel/abi';
import { EventView } from '../src/stream/decode';
import { native } from '../src/kernel/addon';
import { encode } from './encode';

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
});

test('EventView reads every field where the offsets say', () => {
  const buf = encode([
    {
      kind: Kind.ICMP, cpu: 513, startNs: 2 ** 40 + 7, durationNs: 123456789, key: 0xffffffffc0a01234n, flags: 1,
      icmp: { saddr: '10.1.2.3', daddr: '198.18.0.2', id: 65535, seq: 258, type: 8, code: 3, arrivalCpu: 7 },
    },
  ]);
  const v = new EventView(buf);
  const w = EventView.base(0);
  assert.equal(v.kind(w), Kind.ICMP);
  assert.equal(v.cpu(w), 513);
  assert.equal(v.startNs(w), 2 ** 40 + 7);
  assert.equal(v.durationNs(w), 123456789);
  assert.equal(v.keyLo(w), 0xc0a01234);
  assert.equal(v.key52(w), 0xfffffc0a01234);
  assert.equal(v.flags(w), 1);
  assert.equal(v.icmpSaddr(w), '10.1.2.3');
  assert.equal(v.icmpDaddr(w), '198.18.0.2');
  assert.equal(v.icmpId(w), 65535);
  assert.equal(v.icmpSeq(w), 258);
  assert.equal(v.icmpType(w), 8);
  assert.equal(v.icmpCode(w), 3);
  assert.equal(v.icmpArrivalCpu(w), 7);
});

test('the addon reports no libbpf or libelf as shared libraries', async () => {
  const { spawnSync } = await import('node:child_process');
  const { ADDON_PATH } = await import('../src/kernel/addon');
  const r = spawnSync('ldd', [ADDON_PATH], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /libbpf|libelf|libz\.|libzstd/);
});
