// What the VM tests of kernels with estimation_timer (before 6.2) check alike:
// reading the guest's files, and `jitterscope ping` with RPS steered to the
// estimator's CPU naming it (test/vm/common.sh: ping_estimator).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { validator } from '../helpers';

export const read = (dir: string, f: string) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));

/** The all-CPU estimation_timer histogram of a report. */
export const ipvsAll = (r: any) => r.histograms.find((h: any) => h.probe === 'ipvs_estimation' && h.cpu === null);

/** `hasSwitch`: the guest kernel has net.ipv4.vs.run_estimation, so the advice names it. */
export function assertPingNamesEstimator(dir: string, hasSwitch: boolean): void {
  const r = read(dir, 'ping-ipvs.json');
  assert.ok(validator()(r));
  const text = fs.readFileSync(path.join(dir, 'ping-ipvs.txt'), 'utf8');
  const cpu = Number(/estimator on CPU (\d+)/.exec(fs.readFileSync(path.join(dir, 'ping-cpus.txt'), 'utf8'))![1]);
  const v = r.ping.verdict;
  assert.equal(v.culprit?.culprit, 'estimation_timer [ip_vs]', text);
  assert.equal(v.culprit.cpu, cpu);
  assert.ok(v.culprit.replies >= 2, `${v.culprit.replies} replies attributed`);
  assert.equal(v.rps.steersToCulpritCpu, true);
  const advice = v.advice.join('\n');
  if (hasSwitch) assert.match(advice, /sysctl -w net\.ipv4\.vs\.run_estimation=0/);
  else {
    assert.doesNotMatch(advice, /sysctl -w/, 'no advice to set a switch this kernel lacks');
    assert.match(advice, /no net\.ipv4\.vs\.run_estimation switch/);
  }
  // every slow reply whose longest overlapping run (the TIMER softirq aside: it
  // holds the estimator) is an estimator run that filled a quarter of the wait
  // (the engine's share) is attributed to it. Under TCG a host pause shows as a
  // longer callback or softirq: a 658 ms SCHED softirq was seen, and a 264 ms
  // TIMER softirq of which the estimator ran 18.7 ms; the softirq rightly wins
  // those, as the estimator explains little of the wait.
  const slow = r.ping.replies.filter((x: any) => x.slow);
  const longest = (x: any) =>
    x.overlaps.filter((o: any) => o.culprit !== 'TIMER softirq').reduce((a: any, o: any) => (!a || o.overlapMs > a.overlapMs ? o : a), null);
  const hit = slow.filter((x: any) => {
    const o = longest(x);
    return o?.culprit.startsWith('estimation_timer') && o.overlapMs >= 1 && o.overlapMs >= 0.25 * (x.waitMs ?? x.rttMs);
  });
  assert.ok(hit.length >= 2, `${hit.length} slow replies waited longest on an estimator run`);
  for (const x of hit) assert.equal(x.attribution?.culprit, 'estimation_timer [ip_vs]', `seq ${x.seq}: ${JSON.stringify(x.overlaps)}`);
  assert.match(text, /Culprit: estimation_timer \[ip_vs\] on CPU \d/);
}

/**
 * Two reports traced at the same time (one by fentry, one by tracepoints) timed
 * the same estimation_timer runs alike: runs matched by start (within 2 ms; runs
 * are 2 s apart), at least 3 of them, median relative difference <= 25 %.
 * Matching matters: the two records attach at different moments (a node start
 * costs 15-75 s in the guest), so their histograms hold different runs.
 */
export function assertSameRunsTimed(a: any, b: any): void {
  const runs = (r: any) => r.stalls.rows.filter((s: any) => s.culprit === 'estimation_timer [ip_vs]');
  const pairs: [number, number][] = [];
  for (const x of runs(a)) {
    const y = runs(b).find((s: any) => Math.abs(s.startNs - x.startNs) < 2e6);
    if (y) pairs.push([x.durationNs, y.durationNs]);
  }
  assert.ok(pairs.length >= 3, `${pairs.length} runs seen by both: ${JSON.stringify([runs(a), runs(b)])}`);
  const diffs = pairs.map(([x, y]) => Math.abs(y - x) / x).sort((p, q) => p - q);
  const median = diffs[Math.floor(diffs.length / 2)];
  assert.ok(median <= 0.25, `median difference ${(median * 100).toFixed(1)} % over ${JSON.stringify(pairs)}`);
}
