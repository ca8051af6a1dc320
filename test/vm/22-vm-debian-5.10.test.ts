// VM: Debian 11's 5.10 kernel (bullseye's package, downloaded only), the kernel
// generation most of the estimation_timer jitter lives on. vmlinux has BTF but
// modules have none, so estimation_timer [ip_vs] is reached by kprobe while
// net_rx_action and icmp_rcv use fentry. One boot runs test/vm/debian-5.10.sh.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { TEST_NIC, vmSuite } from './vm';
import { validator } from '../helpers';
import { assertPingNamesEstimator, ipvsAll, read } from './vm-ipvs';
import { assertNicRingBlamesEstimator, irqs } from './vm-nic';

const suite = vmSuite('debian-5.10', 'debian-5.10.sh', 900_000, TEST_NIC);
before(() => suite.boot());

test('5.10: doctor chooses kprobe for estimation_timer (no module BTF), fentry for the rest', (t) => {
  const dir = suite.job(t);
  if (!dir) return;
  const validate = validator('doctor.v1.json');
  // (one doctor run, with ip_vs loaded: each node start costs 15-75 s in this guest)
  const d = read(dir, 'doctor-ipvs.json');
  assert.ok(validate(d), JSON.stringify(validate.errors));
  assert.match(d.kernel.release, /^5\.10\./);
  assert.equal(d.kernel.btf, true);
  assert.equal(d.attach.fentry.ok, true);
  assert.equal(d.attach.kprobe.ok, true);
  assert.equal(d.ipvs.estimator, 'timer');
  assert.equal(d.ipvs.services, 20000);
  assert.equal(d.ipvs.runEstimation, null, 'Debian 5.10 has no run_estimation switch');
  assert.equal(d.probes.ipvs_estimation.mode, 'kprobe');
  assert.match(JSON.stringify(d.probes.ipvs_estimation), /BTF/, 'it says why not fentry');
  assert.equal(d.probes.net_rx_action.mode, 'fentry');
  assert.equal(d.probes.icmp_rcv.mode, 'fentry');
  // no syscall programs before 5.14: names come from /proc/kallsyms, and doctor says so
  assert.equal(d.symbols.by, 'kallsyms', JSON.stringify(d.symbols));
  assert.match(d.symbols.reason, /refused the naming program/);
  const text = fs.readFileSync(path.join(dir, 'doctor-ipvs.txt'), 'utf8');
  assert.match(text, /no run_estimation switch/);
  assert.doesNotMatch(text, /sysctl -w net\.ipv4\.vs\.run_estimation/, 'no advice to set a switch 5.10 lacks');
});

test('5.10 with a 64 KiB memlock limit and no CAP_SYS_RESOURCE: the error says to raise the limit, nothing written', (t) => {
  const dir = suite.job(t);
  if (!dir) return;
  const err = fs.readFileSync(path.join(dir, 'memlock.err'), 'utf8');
  assert.match(err, /^exit 1$/m, err);
  assert.match(err, /EPERM/);
  assert.match(err, /kernels before 5\.11 charge BPF maps to the locked-memory limit \(65536 bytes here\).*memlock=-1/, err);
  assert.ok(!fs.existsSync(path.join(dir, 'memlock.json')), 'no report');
});

test('5.10 + 20,000 services: record measures estimation_timer by kprobe, >= 3 runs', (t) => {
  const dir = suite.job(t);
  if (!dir) return;
  const r = read(dir, 'ipvs-20000.json');
  assert.ok(validator()(r));
  assert.equal(r.meta.probes.ipvs_estimation.mode, 'kprobe');
  assert.equal(r.meta.probes.ipvs_estimation.active, true);
  const all = ipvsAll(r);
  assert.ok(all && all.count >= 3, `${all?.count} runs`);
  assert.ok(all.p50 >= 1e6, `median run ${all.p50} ns: 20,000 services take milliseconds`);
  const row = r.timers.byMax.find((x: any) => x.symbol === 'estimation_timer [ip_vs]');
  assert.ok(row, 'estimation_timer [ip_vs] among the timer callbacks, by name');
  assert.match(fs.readFileSync(path.join(dir, 'ipvs-20000.err'), 'utf8'), /^jitterscope: fallback: ipvs_estimation by kprobe \(fentry needs ip_vs BTF/m);
});

test('5.10 + 40,000 services, RPS to the estimator CPU: ping names estimation_timer, advice without the missing switch', (t) => {
  const dir = suite.job(t);
  if (!dir) return;
  assertPingNamesEstimator(dir, false);
});

test("5.10 (kprobe path): with the NIC's interrupt on the estimator's CPU, requests that waited in the NIC ring are timed from the interrupt and blamed on estimation_timer", (t) => {
  const dir = suite.job(t);
  if (!dir) return;
  const n = irqs(dir, 'irq-on-estimator');
  assert.ok(n.cpu1 >= 0.9 * (n.cpu0 + n.cpu1), `the NIC's interrupts landed on CPU 1: ${JSON.stringify(n)}`);
  assert.equal(read(dir, 'irq-on-estimator.json').meta.probes.ipvs_estimation.mode, 'kprobe');
  assertNicRingBlamesEstimator(t, dir, 'irq-on-estimator', 5201);
});
