// VM: Debian's 6.12 kernel, where IPVS estimates in kthreads (6.2+) and
// estimation_timer does not exist. One boot runs test/vm/debian-6.12.sh.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { vmSuite } from './vm';
import { validator } from './helpers';

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
  assert.ok(d.ipvs.kthreads.some((k: string) => k.startsWith('ipvs-e:')), JSON.stringify(d.ipvs));
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
