// Unit: the excuse a host pause gives a timing test (test/excuse.ts), on a
// recorded run that holds pauses: `jitterscope ping` across two namespaces
// with the lab stall on CPU 1 and lab pauses (interrupts held off 20 ms every
// 700 ms on CPU 1). A pause must set aside only the samples it touched; a
// wrong attribution elsewhere, or a schema error, must still fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readJson, ROOT, validator } from '../../helpers';
import { allowedMisses, binomialTail, FALSE_FAILURE_BUDGET, judgeCount, judgeShare, pausesOf, replyWindow, timingTest, touchedByPause } from '../../excuse';

const FIXTURE = path.join(ROOT, 'test', 'fixtures', 'ping-with-pauses.json');
const fixture = () => readJson(FIXTURE);

function slowOf(r: any) {
  const window = (x: any) => replyWindow(x, r.meta.clock.realtimeOffsetNs, [0]);
  const slow = (r.ping.replies as any[]).filter((x) => x.slow);
  const pauses = pausesOf(r);
  return { slow, window, pauses, paused: slow.filter((x) => touchedByPause(window(x), pauses)) };
}

const named = (x: any) => x.attribution?.culprit === 'bpf_timer_cb' && x.attribution.cpu === 1;
const check = (r: any) => {
  const { slow, window, pauses } = slowOf(r);
  return judgeShare({ what: 'slow replies blamed on bpf_timer_cb', samples: slow, window, ok: named, minShare: 0.9, minSamples: 5, noise: 0.005 }, pauses);
};

/** A stand-in for node:test's context that records a skip. */
function fakeT() {
  const seen: { skipped: string | null } = { skipped: null };
  return { seen, t: { skip: (m?: string) => (seen.skipped = m ?? '') } };
}

test('the recorded run is valid, holds pauses on CPU 1, and they touched some slow replies', () => {
  const r = fixture();
  assert.ok(validator()(r));
  const { slow, pauses, paused } = slowOf(r);
  assert.ok(pauses.length >= 3 && pauses.every((p) => p.cpu === 1), JSON.stringify(pauses));
  assert.ok(slow.length >= 10);
  assert.ok(paused.length >= 1 && paused.length < slow.length, `${paused.length} of ${slow.length} slow replies touched`);
  // the reply the engine itself blamed on a pause is among them
  for (const x of slow.filter((s) => s.attribution?.kind === 'pause')) assert.ok(paused.includes(x), `seq ${x.seq}`);
});

test('as recorded, the run passes: the paused replies are set aside, the rest are the stall', () => {
  const j = check(fixture());
  assert.equal(j.verdict, 'pass', j.text);
  assert.ok(j.excused >= 1);
});

test('a wrong attribution outside the paused samples still fails', () => {
  const r = fixture();
  const { slow, paused } = slowOf(r);
  const clean = slow.filter((x) => !paused.includes(x));
  // three of 13: more than the noise excuses (two, at 0.5 %)
  for (const x of clean.slice(0, 3)) x.attribution = { ...x.attribution, culprit: 'tick_nohz_handler' };
  const j = check(r);
  assert.equal(j.verdict, 'fail', j.text);
});

test('a wrong attribution in paused samples only is excused', () => {
  const r = fixture();
  for (const x of slowOf(r).paused) x.attribution = null;
  assert.equal(check(r).verdict, 'pass');
});

test('with every sample paused, too few are left: more traffic, then a skip; never a pass', async () => {
  const r = fixture();
  // a pause over the whole run on both CPUs: no slow reply is clean
  r.stalls.rows.push({ cpu: 0, kind: 'pause', culprit: 'host pause or IRQs off', startNs: 0, durationNs: 1e19 });
  r.stalls.rows.push({ cpu: 1, kind: 'pause', culprit: 'host pause or IRQs off', startNs: 0, durationNs: 1e19 });
  const j = check(r);
  assert.equal(j.verdict, 'too-few', j.text);
  assert.equal(j.clean, 0);
  const { seen, t } = fakeT();
  let runs = 0;
  const outcome = await timingTest(t, async () => {
    runs++;
    return [check(r)];
  });
  assert.equal(outcome, 'skip');
  assert.equal(runs, 3, 'extended twice before giving up');
  assert.match(seen.skipped ?? '', /too few clean samples/);
});

test('a schema error fails even when every sample was paused', async () => {
  const r = fixture();
  r.stalls.rows.push({ cpu: 1, kind: 'pause', culprit: 'host pause or IRQs off', startNs: 0, durationNs: 1e19 });
  r.ping.address = 'not an address';
  const { seen, t } = fakeT();
  await assert.rejects(
    timingTest(t, async () => {
      const validate = validator();
      assert.ok(validate(r), JSON.stringify(validate.errors));
      return [check(r)];
    }),
    /ping\/address|must match/,
  );
  assert.equal(seen.skipped, null);
});

test('a shortfall the pauses cannot explain fails', () => {
  const r = fixture();
  const { slow, window, pauses } = slowOf(r);
  // only 3 samples, none paused: too few, and not the host's doing
  const few = slow.filter((x) => !touchedByPause(window(x), pauses)).slice(0, 3);
  assert.equal(judgeCount('slow replies', few, window, 5, pauses).verdict, 'fail');
  // ...and excused samples that could not have met the share either: fail, not too-few
  const bad = slow.map((x) => ({ ...x, attribution: null }));
  const j = judgeShare({ what: 'w', samples: bad, window, ok: named, minShare: 0.9, minSamples: 100, noise: 0.005 }, pauses);
  assert.equal(j.verdict, 'fail', j.text);
});

test('a pause touches only samples on its CPUs and near its time', () => {
  const p = [{ cpu: 1, startNs: 100e6, durationNs: 20e6 }];
  assert.equal(touchedByPause({ cpus: [1], fromNs: 110e6, toNs: 111e6 }, p), true);
  assert.equal(touchedByPause({ cpus: [0], fromNs: 110e6, toNs: 111e6 }, p), false, 'another CPU');
  assert.equal(touchedByPause({ cpus: [1], fromNs: 121e6, toNs: 130e6 }, p), false, 'after it');
  assert.equal(touchedByPause({ cpus: [1], fromNs: 50e6, toNs: 70e6 }, p), false, 'well before it');
  assert.equal(touchedByPause({ cpus: [0, 1], fromNs: 85e6, toNs: 95e6 }, p), true, 'within the lead before its first sighting');
});

test('a pause seen while a task held its CPU began at most a jiffy before it was seen; on an idle CPU up to 20 ms', () => {
  const MS = 1e6;
  const rows = [
    // a task held CPU 1 over 100-140 ms; a 2 ms pause seen at 120 ms inside it, another at 300 ms on an idle CPU 1
    { kind: 'task', cpu: 1, startNs: 100 * MS, durationNs: 40 * MS },
    { kind: 'pause', cpu: 1, startNs: 120 * MS, durationNs: 2 * MS },
    { kind: 'pause', cpu: 1, startNs: 300 * MS, durationNs: 2 * MS },
  ];
  const pauses = pausesOf({ stalls: { rows } });
  assert.deepEqual(
    pauses.map((p) => p.leadNs),
    [4 * MS, 20 * MS],
  );
  const at = (fromMs: number, toMs: number) => touchedByPause({ cpus: [1], fromNs: fromMs * MS, toNs: toMs * MS }, pauses);
  assert.equal(at(100, 115), false, 'a wait that ended 5 ms before the busy pause was seen');
  assert.equal(at(100, 117), true, 'within a jiffy of it');
  assert.equal(at(270, 285), true, 'within 20 ms of the idle one');
  // a task that began within the jiffy before the pause does not prove the CPU was busy all of it
  assert.equal(pausesOf({ stalls: { rows: [{ ...rows[0], startNs: 118 * MS }, rows[1]] } })[0].leadNs, 20 * MS);
});

test('the binomial tail: the chance of more than m misses among n', () => {
  assert.equal(binomialTail(10, 0.5, 4), 1 - 386 / 1024);
  assert.ok(Math.abs(binomialTail(5, 0.1, 0) - (1 - 0.9 ** 5)) < 1e-12);
  assert.equal(binomialTail(5, 0.1, 5), 0);
  assert.equal(binomialTail(5, 0.1, -1), 1);
  // TESTING.md's example: p = 2 %, n = 30, at most 3 misses: about 3e-3; n = 60, at most 6: about 2e-4
  assert.ok(Math.abs(binomialTail(30, 0.02, 3) - 2.9e-3) < 1e-4);
  assert.ok(Math.abs(binomialTail(60, 0.02, 6) - 2.0e-4) < 1e-5);
});

test("the budget: a check's own share where it is within 1 in 2,000, looser where not, and too few to judge below its floor", () => {
  const own = allowedMisses(30, 0.9, 0.005)!;
  assert.deepEqual([own.misses, own.loosened], [3, false]);
  assert.ok(own.tail <= FALSE_FAILURE_BUDGET);
  // 90 % of 12 allows one miss: at 0.5 % noise that fails a correct build 1.6e-3 of runs; two misses are within the budget
  const small = allowedMisses(12, 0.9, 0.005)!;
  assert.deepEqual([small.misses, small.loosened], [2, true]);
  assert.ok(binomialTail(12, 0.005, 1) > FALSE_FAILURE_BUDGET && small.tail <= FALSE_FAILURE_BUDGET);
  // the mesh's TCG guest (7 % noise) at 7 samples would need 4 misses allowed: under the 70 % floor
  assert.equal(allowedMisses(7, 0.9, 0.07), null);
  assert.ok(allowedMisses(40, 0.9, 0.07, 0.7)!.misses <= 12);
});

test('judged with the budget: loosened at small n, still failing a wrong attribution, and too few to judge rather than a false failure', async () => {
  const samples = Array.from({ length: 12 }, (_, i) => i);
  const window = () => ({ cpus: [0], fromNs: 0, toNs: 0 });
  const judge = (good: number, noise: number, n = 12) =>
    judgeShare({ what: 'w', samples: samples.slice(0, n), window, ok: (i) => i < good, minShare: 0.9, minSamples: 5, noise }, []);
  assert.equal(judge(12, 0.005).verdict, 'pass');
  const loosened = judge(10, 0.005);
  assert.equal(loosened.verdict, 'pass', loosened.text);
  assert.match(loosened.text, /loosened to 10 of 12 by the noise; false-failure chance [\d.e-]+ at noise 0\.005/);
  assert.equal(judge(9, 0.005).verdict, 'fail');
  assert.equal(judge(0, 0.005).verdict, 'fail', 'a broken attribution fails');
  // 7 samples at 7 % noise: a miss cannot be told from the noise within the budget
  const few = judge(5, 0.07, 7);
  assert.equal(few.verdict, 'too-few', few.text);
  assert.match(few.text, /too few to judge at this noise/);
  assert.equal(judge(7, 0.07, 7).verdict, 'pass', 'a pass needs no budget');
});
