// VM: a real arm64 kernel. Debian's arm64 6.1 under qemu-system-aarch64 (TCG,
// -machine virt) runs jitterscope as a node would get it: the packed tarball
// installed without a compiler, its prebuilt arm64 addon chosen by
// process.arch, Node for arm64 from the npm registry. There fentry programs
// load but do not attach (no DYNAMIC_FTRACE_WITH_DIRECT_CALLS: -524), so the
// ladder must pick kprobe and say why; the lab stall is named on its CPU;
// IPVS's estimation_timer at 20,000 services is measured by kprobe; and the
// NIC-ring check of the x86 NIC guest's scenario (a) runs over a virtio-net
// NIC fed from a tap here. One boot runs test/vm/arm64-6.1.sh.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { readReport } from '../helpers';
import { arm64SkipReason, ensureArm64Guest, runArm64 } from './vm-arm64';
import { guestSuite, TEST_NIC } from './vm';
import { assertNicRingBlamesEstimator } from './vm-nic';

const suite = guestSuite('arm64', 'arm64-6.1.sh', arm64SkipReason(), (text) => runArm64(ensureArm64Guest(), text, 1_200_000, TEST_NIC));
before(() => suite.boot());
const job = (t: { skip: (m?: string) => void }) => suite.job(t);

test('arm64: doctor in the guest — node is arm64, fentry loads but cannot attach, so kprobe is chosen and says why', (t) => {
  const dir = job(t);
  if (!dir) return;
  assert.equal(fs.readFileSync(path.join(dir, 'arch.txt'), 'utf8').trim(), 'arm64');
  const d = JSON.parse(fs.readFileSync(path.join(dir, 'doctor-ipvs.json'), 'utf8'));
  assert.equal(d.kernel.btf, true);
  assert.match(d.kernel.release, /^6\.1\.0-\d+-arm64$/);
  assert.equal(d.attach.fentry.ok, false);
  assert.match(d.attach.fentry.error, /^attach: /, `fentry fails at attach: ${d.attach.fentry.error}`);
  assert.equal(d.attach.kprobe.ok, true);
  assert.equal(d.symbols.by, 'kernel', `callbacks named by the kernel's %pS: ${d.symbols.reason}`);
  assert.ok(
    d.advice.some((a: string) => /fentry programs load but this kernel cannot attach them \(ENOTSUPP/.test(a)),
    `advice says why: ${d.advice.join(' | ')}`,
  );
  for (const p of ['net_rx_action', 'icmp_rcv', 'ipvs_estimation']) {
    assert.equal(d.probes[p].mode, 'kprobe', `${p}: ${JSON.stringify(d.probes[p])}`);
    assert.match(d.probes[p].reason, /fentry unavailable \(attach: /, `${p} says why not fentry`);
  }
});

test('arm64: record names the lab stall (bpf_timer_cb) on CPU 1', (t) => {
  const dir = job(t);
  if (!dir) return;
  const r = readReport(path.join(dir, 'lab.json'));
  const row = r.timers.byMax.find((x: any) => x.symbol === 'bpf_timer_cb');
  assert.ok(row && row.cpu === 1 && row.count >= 10, `bpf_timer_cb on CPU 1: ${JSON.stringify(row)}`);
  assert.ok(row.maxNs >= 12e6 && row.maxNs <= 60e6, `a 15 ms stall measured ${row.maxNs} ns`);
  assert.equal(r.meta.probes.net_rx_action.via, 'kprobe');
});

test('arm64: estimation_timer at 20,000 IPVS services, measured by kprobe', (t) => {
  const dir = job(t);
  if (!dir) return;
  const r = readReport(path.join(dir, 'ipvs.json'));
  const p = r.meta.probes.ipvs_estimation;
  assert.equal(p.active, true, JSON.stringify(p));
  assert.equal(p.via, 'kprobe', JSON.stringify(p));
  const runs = r.histograms.find((h: any) => h.probe === 'ipvs_estimation' && h.cpu === null);
  assert.ok(runs && runs.count >= 3, `estimation_timer runs: ${JSON.stringify(runs && { count: runs.count, max: runs.max })}`);
  assert.ok(runs.p50 >= 1e6, `20,000 services take over 1 ms a run even on a fast machine: p50 ${runs.p50} ns`);
  assert.ok(
    r.stalls.rows.some((s: any) => s.culprit === 'estimation_timer [ip_vs]'),
    'its runs are stalls by name',
  );
});

test("arm64 NIC ring: the interrupt on the estimator's CPU, RPS off: requests the host saw slow are slow in the guest, from the interrupt, blamed on estimation_timer", (t) => {
  const dir = job(t);
  if (!dir) return;
  assertNicRingBlamesEstimator(t, dir, 'irq-on-estimator', 5101);
});
