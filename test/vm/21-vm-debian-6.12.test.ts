// VM: Debian's 6.12 kernel, where IPVS estimates in kthreads (6.2+) and
// estimation_timer does not exist. One boot runs test/vm/debian-6.12.sh.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { vmSuite } from './vm';
import { validator } from '../helpers';

const suite = vmSuite('debian-6.12', 'debian-6.12.sh', 900_000);
before(() => suite.boot());

test('6.12: doctor reports the kthread estimator; record runs and exits 0', (t) => {
  const dir = suite.job(t);
  if (!dir) return;
  const read = (f: string) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
  const validate = validator('doctor.v1.json');
  const d = read('doctor-ipvs.json');
  assert.ok(validate(d), JSON.stringify(validate.errors));
  assert.match(d.kernel.release, /^6\.12\./);
  assert.equal(d.ipvs.estimator, 'kthread');
  assert.ok(
    d.ipvs.kthreads.some((k: string) => k.startsWith('ipvs-e:')),
    JSON.stringify(d.ipvs),
  );
  assert.notEqual(d.ipvs.estCpulist, null);
  assert.notEqual(d.ipvs.estNice, null);
  assert.equal(d.probes.ipvs_estimation.mode, null);
  assert.match(d.probes.ipvs_estimation.reason, /kthreads/);
  assert.match(fs.readFileSync(path.join(dir, 'doctor-ipvs.txt'), 'utf8'), /estimator: kthread/);
  const r = read('record.json');
  assert.ok(validator()(r));
  assert.equal(r.meta.probes.ipvs_estimation.active, false);
  assert.match(r.meta.probes.ipvs_estimation.reason, /kthreads/);
  assert.equal(r.meta.probes.net_rx_action.mode, 'fentry');
  assert.ok(r.meta.events.total > 0);
  assert.match(fs.readFileSync(path.join(dir, 'record.err'), 'utf8'), /jitterscope: wrote \/jsvm\/record.json/);
});

test('6.12: the host stops the VM for 1.5 s while record runs: a host pause of that length on each guest CPU', (t) => {
  const dir = suite.job(t);
  if (!dir) return;
  const log = path.join(dir, 'pause-request.log');
  assert.ok(
    fs.existsSync(path.join(dir, 'pause-done')),
    `the guest's pause request got no answer: ${fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : 'no log'}`,
  );
  const done = JSON.parse(fs.readFileSync(path.join(dir, 'pause-done'), 'utf8'));
  assert.equal(done.requestedMs, 1500, JSON.stringify(done));
  const r = JSON.parse(fs.readFileSync(path.join(dir, 'record.json'), 'utf8'));
  const validate = validator();
  assert.ok(validate(r), JSON.stringify(validate.errors?.slice(0, 3)));
  const pauses = r.stalls.rows.filter((s: any) => s.kind === 'pause');
  assert.ok(pauses.every((s: any) => s.culprit === 'host pause or IRQs off'));
  // the host's stop, seen on each CPU (each had a 10 ms sleep due): no guest code ran
  // for the stop's length, give or take what TCG and the host's timer add
  for (const cpu of [0, 1]) {
    const longest = Math.max(0, ...pauses.filter((s: any) => s.cpu === cpu).map((s: any) => s.durationNs / 1e6));
    assert.ok(
      longest >= 0.85 * done.stoppedMs && longest <= done.stoppedMs + 1000,
      `CPU ${cpu}: longest pause ${longest} ms, host stopped ${done.stoppedMs} ms: ${JSON.stringify(pauses.slice(0, 10))}`,
    );
  }
  assert.ok(r.meta.events.pause >= 2);
  const hist = r.histograms.find((h: any) => h.probe === 'pause' && h.cpu === null);
  assert.ok(hist && hist.max >= 0.85 * done.stoppedMs * 1e6, JSON.stringify(hist));
});
