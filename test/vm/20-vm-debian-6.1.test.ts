// VM: Debian's 6.1 kernel under QEMU, with kprobes, fentry and the real IPVS
// estimation_timer. One boot runs test/vm/debian-6.1.sh; the tests below read
// what it left in the job directory.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { vmSuite } from './vm';
import { validator } from '../helpers';
import { assertPingNamesEstimator, assertSameRunsTimed, ipvsAll, read } from './vm-ipvs';

const suite = vmSuite('debian-6.1', 'debian-6.1.sh', 1_200_000);
before(() => suite.boot());
const job = (t: { skip: (m?: string) => void }) => suite.job(t);

test('6.1: doctor finds fentry, kprobes and the timer estimator; its JSON validates', (t) => {
  const dir = job(t);
  if (!dir) return;
  const validate = validator('doctor.v1.json');
  for (const f of ['doctor-noipvs.json', 'doctor-ipvs.json']) assert.ok(validate(read(dir, f)), `${f}: ${JSON.stringify(validate.errors)}`);
  const before = read(dir, 'doctor-noipvs.json');
  assert.match(before.kernel.release, /^6\.1\./);
  assert.equal(before.attach.fentry.ok, true);
  assert.equal(before.attach.kprobe.ok, true);
  assert.equal(before.ipvs.loaded, false);
  assert.equal(before.probes.ipvs_estimation.mode, null);
  assert.equal(before.symbols.by, 'kernel', `callbacks named by the kernel's %pS: ${before.symbols.reason}`);
  const d = read(dir, 'doctor-ipvs.json');
  assert.equal(d.ipvs.estimator, 'timer');
  assert.equal(d.ipvs.services, 20000);
  assert.equal(d.ipvs.runEstimation, 1);
  assert.equal(d.probes.ipvs_estimation.mode, 'fentry');
  assert.ok(
    d.advice.some((a: string) => /run_estimation=0/.test(a)),
    'advice names run_estimation=0',
  );
});

test('6.1: estimation_timer by fentry/kprobe, >= 3 runs, 20,000 services take >= 5x as long as 1,000', (t) => {
  const dir = job(t);
  if (!dir) return;
  const small = read(dir, 'ipvs-1000.json');
  const big = read(dir, 'ipvs-20000-auto.json');
  const validate = validator();
  for (const r of [small, big]) {
    assert.ok(validate(r), JSON.stringify(validate.errors?.slice(0, 3)));
    assert.match(r.meta.probes.ipvs_estimation.mode, /^(fentry|kprobe)$/);
    assert.ok(ipvsAll(r).count >= 3, `${ipvsAll(r).count} runs`);
  }
  const ratio = ipvsAll(big).p50 / ipvsAll(small).p50;
  assert.ok(ratio >= 5, `median ${ipvsAll(big).p50} ns at 20,000 vs ${ipvsAll(small).p50} ns at 1,000: ${ratio.toFixed(1)}x`);
  const kp = read(dir, 'ipvs-20000-kprobe.json');
  assert.equal(kp.meta.probes.ipvs_estimation.mode, 'kprobe');
  assert.ok(ipvsAll(kp).count >= 3);
});

test('6.1: --attach tracepoint times the same runs within 25 % of fentry', (t) => {
  const dir = job(t);
  if (!dir) return;
  const fe = read(dir, 'ipvs-20000-fentry.json');
  const tp = read(dir, 'ipvs-20000-tracepoint.json');
  assert.equal(fe.meta.probes.ipvs_estimation.mode, 'fentry');
  assert.match(tp.meta.probes.ipvs_estimation.mode, /^(tp_btf|raw_tp) \(timer_expire_\* filtered on estimation_timer\)$/);
  assertSameRunsTimed(fe, tp);
});

test('6.1: net_rx_action and icmp_rcv by kprobe see a ping', (t) => {
  const dir = job(t);
  if (!dir) return;
  const r = read(dir, 'kprobe-ping.json');
  assert.equal(r.meta.probes.net_rx_action.mode, 'kprobe');
  assert.equal(r.meta.probes.icmp_rcv.mode, 'kprobe');
  const ours = r.icmp.packets.filter((p: any) => p.id === 4242);
  assert.deepEqual(
    [...new Set(ours.filter((p: any) => p.type === 8).map((p: any) => p.seq))].sort((x: any, y: any) => x - y),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  );
  assert.ok(ours.filter((p: any) => p.type === 0).length >= 10, 'echo replies');
  const nra = r.histograms.find((h: any) => h.probe === 'net_rx_action' && h.cpu === null);
  assert.ok(nra && nra.count >= 10, 'net_rx_action runs');
  // and fentry, chosen by default, saw the ping run's traffic too
  const auto = read(dir, 'ipvs-20000-auto.json');
  assert.equal(auto.meta.probes.net_rx_action.mode, 'fentry');
  assert.equal(auto.meta.probes.icmp_rcv.mode, 'fentry');
  const pingRep = read(dir, 'ping-ipvs.json');
  assert.equal(pingRep.meta.probes.icmp_rcv.mode, 'fentry');
  assert.ok(pingRep.ping.replies.filter((x: any) => x.replyCpu !== null).length >= 2900, 'icmp_rcv (fentry) saw the replies');
});

test('6.1: ip_vs loaded while tracing attaches by itself; unloaded, the probe goes inactive and tracing goes on', (t) => {
  const dir = job(t);
  if (!dir) return;
  const r = read(dir, 'hotplug.json');
  assert.ok(r.meta.notes.includes('ip_vs was loaded while tracing: ipvs_estimation attached (kprobe)'), JSON.stringify(r.meta.notes));
  assert.ok(r.meta.notes.includes('ip_vs was unloaded while tracing: ipvs_estimation went inactive'), JSON.stringify(r.meta.notes));
  assert.equal(r.meta.probes.ipvs_estimation.active, false);
  assert.ok(ipvsAll(r)?.count >= 2, 'estimation_timer runs while ip_vs was loaded');
  assert.ok(r.meta.events.softirq > 0, 'tracing went on');
});

test('6.1 + 40,000 services, RPS to the estimator CPU: ping names estimation_timer', (t) => {
  const dir = job(t);
  if (!dir) return;
  assertPingNamesEstimator(dir, true);
});

test('6.1: serve counts net_rx_action (fentry) in the kernel and exports it, with estimation_timer by kprobe; rmmod ip_vs works under it, and it traces ip_vs again when it returns', (t) => {
  const dir = job(t);
  if (!dir) return;
  const err = fs.readFileSync(path.join(dir, 'serve.err'), 'utf8');
  assert.match(err, /serve exit 0/, err);
  const metrics = (name: string) => fs.readFileSync(path.join(dir, name), 'utf8');
  const value = (text: string, re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  const info = (text: string, probe: string) =>
    new RegExp(`jitterscope_probe_info\\{probe="${probe}",via="(\\w+)",mode="[^"]*",active="(\\w+)"\\} 1`).exec(text)?.slice(1, 3).join(' ');
  const EST_COUNT = /^jitterscope_estimation_timer_seconds_count (\d+)/m;
  const text = metrics('serve-metrics.txt');
  assert.equal(info(text, 'net_rx_action'), 'fentry true', text.slice(0, 3000));
  assert.equal(info(text, 'ipvs_estimation'), 'kprobe true', 'an fentry link would hold ip_vs: kprobe');
  assert.ok(value(text, /^jitterscope_net_rx_action_seconds_count (\d+)/m) >= 20, 'net_rx_action runs counted');
  assert.ok(value(text, EST_COUNT) >= 1, 'estimation_timer runs exported');
  // the module goes while serve traces
  const rmmod = metrics('serve-rmmod.txt');
  assert.match(rmmod, /rmmod exit 0/, `rmmod ip_vs under serve: ${rmmod}`);
  const unloaded = metrics('serve-metrics-unloaded.txt');
  assert.equal(info(unloaded, 'ipvs_estimation'), 'none false', 'inactive while ip_vs is gone');
  assert.match(err, /ip_vs was unloaded while tracing/);
  // ...and comes back: traced again, by kprobe
  const reloaded = metrics('serve-metrics-reloaded.txt');
  assert.equal(info(reloaded, 'ipvs_estimation'), 'kprobe true', reloaded.slice(0, 3000));
  assert.match(err, /ip_vs was loaded while tracing: ipvs_estimation attached \(kprobe\)/);
  assert.ok(
    value(reloaded, EST_COUNT) > value(unloaded, EST_COUNT),
    `estimation_timer runs after the reload: ${value(unloaded, EST_COUNT)} -> ${value(reloaded, EST_COUNT)}`,
  );
  // every scrape answered, through the unload, CPU 1 offline and back, and the reload (~35 s; a scrape
  // takes 0.5-2 s in the emulated guest, so 19-69 of them in CI runs)
  const [ok, n] = metrics('serve-scrapes.txt').trim().split(' of ').map(Number);
  assert.ok(n >= 10 && ok === n, `scrapes answered: ${ok} of ${n}`);
});
