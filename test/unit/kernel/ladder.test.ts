// Unit: the attach ladder's choices on made-up kernels (no kernel): the best
// rung, forced rungs, IPVS states, the socket of a wake-up, and the parsers
// the ladder reads the host with. kernel/16-doctor-ladder runs it for real.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EnvironmentError } from '../../../src/base/errors';
import { parseIpvsTable } from '../../../src/host/ipvs';
import { kernelVersion } from '../../../src/host/kernel-info';
import { checkForced, chooseModes, chooseSockReady, Features, hasSkDataReadyTracepoint } from '../../../src/kernel/ladder';

test('forcing a mode the kernel lacks names the modes it has', () => {
  const ok = { ok: true, error: null };
  const f: Features = { btf: true, fentry: { ok: false, error: 'load: EPERM' }, kprobe: ok, tp_btf: ok, raw_tp: ok, tracefs: null };
  assert.throws(
    () => checkForced(f, 'fentry'),
    (e: Error) =>
      e instanceof EnvironmentError && e.message === '--attach fentry: this kernel does not allow fentry programs (load: EPERM); it has: kprobe, tracepoint',
  );
  assert.doesNotThrow(() => checkForced(f, 'kprobe'));
  assert.doesNotThrow(() => checkForced(f, 'auto'));
  const none: Features = { ...f, kprobe: { ok: false, error: 'attach: ENOENT' } };
  assert.throws(() => checkForced(none, 'kprobe'), /--attach kprobe: .*\(attach: ENOENT\); it has: tracepoint$/);
});

test('ladder choices: best rung, forced rung, IPVS states', () => {
  const ok = { ok: true, error: null };
  const no = (e: string) => ({ ok: false, error: e });
  const all: Features = { btf: true, fentry: ok, kprobe: ok, tp_btf: ok, raw_tp: ok, tracefs: null };
  const ipvsTimer = { loaded: true, estimationTimer: true, moduleBtf: true, kthreadEstimator: false };
  let c = chooseModes(all, ipvsTimer, 'auto');
  assert.equal(c.ipvs_estimation.mode, 'fentry');
  assert.equal(c.net_rx_action.mode, 'fentry');
  c = chooseModes(all, { ...ipvsTimer, moduleBtf: false }, 'auto');
  assert.equal(c.ipvs_estimation.mode, 'kprobe');
  assert.match(c.ipvs_estimation.reason, /ip_vs BTF/);
  c = chooseModes({ ...all, fentry: no('load: EPERM') }, ipvsTimer, 'auto');
  assert.equal(c.icmp_rcv.mode, 'kprobe');
  assert.match(c.icmp_rcv.reason, /fentry unavailable \(load: EPERM\)/);
  c = chooseModes(all, ipvsTimer, 'tracepoint');
  assert.equal(c.ipvs_estimation.mode, 'tracepoint');
  c = chooseModes(all, { loaded: false, estimationTimer: false, moduleBtf: false, kthreadEstimator: false }, 'auto');
  assert.equal(c.ipvs_estimation.mode, null);
  assert.match(c.ipvs_estimation.reason, /not loaded/);
  c = chooseModes(all, { loaded: true, estimationTimer: false, moduleBtf: true, kthreadEstimator: true }, 'auto');
  assert.equal(c.ipvs_estimation.mode, null);
  assert.match(c.ipvs_estimation.reason, />= 6\.2/);
  // left on for days (serve, top): the module function by kprobe, which does not hold ip_vs; vmlinux ones stay fentry
  c = chooseModes(all, ipvsTimer, 'auto', false);
  assert.deepEqual([c.ipvs_estimation.mode, c.net_rx_action.mode], ['kprobe', 'fentry']);
  assert.match(c.ipvs_estimation.reason, /would hold ip_vs loaded/);
  assert.equal(chooseModes(all, ipvsTimer, 'fentry', false).ipvs_estimation.mode, 'fentry', '--attach fentry is obeyed (with a note)');
  assert.equal(
    chooseModes({ ...all, kprobe: no('load: ENOENT') }, ipvsTimer, 'auto', false).ipvs_estimation.mode,
    'fentry',
    'no kprobes: fentry still traces it',
  );
});

test('the socket of a network wake-up: sk_data_ready on 6.3+, else fentry, kprobe, or unknown and said', () => {
  const ok = { ok: true, error: null };
  const no = (e: string) => ({ ok: false, error: e });
  const all: Features = { btf: true, fentry: ok, kprobe: ok, tp_btf: ok, raw_tp: ok, tracefs: null };
  assert.equal(hasSkDataReadyTracepoint([6, 3]), true);
  assert.equal(hasSkDataReadyTracepoint([6, 1]), false);
  assert.equal(hasSkDataReadyTracepoint([7, 0]), true);
  assert.equal(chooseSockReady(all, 'auto', true).mode, 'tracepoint', 'every kind of socket, cheapest');
  assert.equal(chooseSockReady(all, 'auto', false).mode, 'fentry');
  assert.equal(chooseSockReady({ ...all, fentry: no('load: EPERM') }, 'auto', false).mode, 'kprobe');
  assert.equal(chooseSockReady(all, 'kprobe', true).mode, 'kprobe', '--attach kprobe is obeyed');
  const none = chooseSockReady({ ...all, fentry: no('load: EPERM'), kprobe: no('attach: ENOENT') }, 'auto', false);
  assert.equal(none.mode, null);
  assert.match(none.reason, /flows of network wake-ups are unknown: no sock:sk_data_ready \(Linux 6\.3\+\), and neither fentry nor kprobe/);
  assert.equal(chooseSockReady(all, 'tracepoint', false).mode, null, 'no tracepoint before 6.3, and --attach tracepoint rules out the rest');
});

test('parsing /proc/net/ip_vs and kernel versions', () => {
  const table = [
    'IP Virtual Server version 1.2.1 (size=4096)',
    'Prot LocalAddress:Port Scheduler Flags',
    '  -> RemoteAddress:Port Forward Weight ActiveConn InActConn',
    'TCP  0A000001:0050 rr',
    '  -> 0A000002:0050      Masq    1      0          0',
    '  -> 0A000003:0050      Masq    1      0          0',
    'UDP  0A000001:0035 rr',
    'FWM  00000001 rr',
  ].join('\n');
  assert.deepEqual(parseIpvsTable(table), { services: 3, destinations: 2 });
  assert.deepEqual(kernelVersion('6.1.0-56-amd64'), [6, 1]);
  assert.deepEqual(kernelVersion('6.12.117+deb12-amd64'), [6, 12]);
});
