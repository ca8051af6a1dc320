// What the NIC-path VM tests check alike (test/25-vm-nic on 6.1, test/22 on
// 5.10): a guest with a virtio-net NIC fed by this host through a tap, IPVS
// with its estimation_timer on CPU 1, the host pinging the guest
// (test/vm/common.sh: record_host_ping).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { parsePingOutput } from '../../src/host/iputils';
import { readReport, skipIf } from '../helpers';
import { judgeShare, Judgement, packetWindow, pausesOf } from '../excuse';
import { NOISE } from '../noise';

export const EST = 'estimation_timer [ip_vs]';
export const blamed = (x: any) => x?.attribution?.culprit === EST && x.attribution.cpu === 1;

export function irqs(dir: string, name: string): { cpu0: number; cpu1: number } {
  const m = /cpu0 (\d+) cpu1 (\d+)/.exec(fs.readFileSync(path.join(dir, `${name}.irqs.txt`), 'utf8'))!;
  return { cpu0: Number(m[1]), cpu1: Number(m[2]) };
}

/** The echo requests the host saw come back at least 5 ms over the median RTT. */
export function hostSlow(dir: string, name: string): { seq: number; rttMs: number }[] {
  const text = fs.readFileSync(path.join(dir, `${name}.host-ping.txt`), 'utf8');
  const replies = parsePingOutput(text).replies;
  assert.ok(replies.length >= 100, `the host's ping got ${replies.length} replies: ${text.slice(-500)}`);
  const rtts = replies.map((r) => r.rttMs).sort((a, b) => a - b);
  const median = rtts[Math.floor(rtts.length / 2)];
  return replies.filter((r) => r.rttMs >= median + 5);
}

/** A VM run cannot be run again with more traffic: a timing check short of clean samples skips, with its figures. */
export function timingVerdict(t: { skip: (m?: string) => void }, judgements: Judgement[]): boolean {
  for (const j of judgements) process.stderr.write(`timing: ${j.verdict}: ${j.text}\n`);
  const failed = judgements.filter((j) => j.verdict === 'fail');
  if (failed.length) assert.fail(failed.map((j) => j.text).join('; '));
  return !skipIf(
    t,
    judgements.every((j) => j.verdict === 'pass') ? null : `host pauses left too few clean samples: ${judgements.map((j) => j.text).join('; ')}`,
  );
}

/** The estimator ran on CPU 1, as set up (a precondition of every scenario here). */
export function estimatorOnCpu1(r: any): void {
  const runs = r.stalls.rows.filter((s: any) => s.culprit === EST);
  assert.ok(runs.length >= 3, `${runs.length} estimation_timer runs traced`);
  assert.ok(
    runs.every((s: any) => s.cpu === 1),
    `estimation_timer ran on CPUs ${[...new Set(runs.map((s: any) => s.cpu))]}`,
  );
}

/**
 * A scenario's report, after the set-up it needs held: the NIC's receive
 * interrupts landed on `irqCpu` and the estimator ran on CPU 1.
 */
export function nicScenario(dir: string, name: string, irqCpu: 0 | 1): any {
  const r = readReport(path.join(dir, `${name}.json`));
  const n = irqs(dir, name);
  const on = irqCpu === 0 ? n.cpu0 : n.cpu1;
  assert.ok(on >= 0.9 * (n.cpu0 + n.cpu1), `the NIC's interrupts landed on CPU ${irqCpu}: ${JSON.stringify(n)}`);
  estimatorOnCpu1(r);
  return r;
}

/**
 * Scenario (a): the NIC's interrupt on the estimator's CPU 1, RPS off, the host
 * pinging with ICMP id `id` while `record` ran as NAME. Requests the host saw
 * slow while an estimator run was on CPU 1 must be slow in the guest, timed
 * from the interrupt (they were first seen in the NAPI poll after the wait),
 * and blamed on it; none the estimator did not overlap may be.
 */
export function assertNicRingBlamesEstimator(t: { skip: (m?: string) => void }, dir: string, name: string, id: number): void {
  const r = nicScenario(dir, name, 1);
  const napi = r.packets.slow.filter((p: any) => p.path === 'napi' || p.path === 'napi-bound');
  assert.ok(napi.length >= 1, 'slow packets first seen in a NAPI poll, timed from its raise');
  assert.ok((r.receive?.stalls ?? []).some(blamed), 'receive stalls blamed on the estimator');
  // each request the host saw slow, where the guest processed it (every ICMP packet is listed)
  const runs = r.stalls.rows.filter((x: any) => x.culprit === EST && x.cpu === 1);
  const slow = hostSlow(dir, name).map((h) => {
    const seen = r.icmp.packets.find((p: any) => p.type === 8 && p.id === id && p.seq === h.seq);
    assert.ok(seen, `request ${h.seq} was seen in the guest`);
    const doneNs = seen.startNs + (seen.waitNs ?? 0);
    // an estimator run on CPU 1 while the request was out: [processed - RTT, processed]
    const during = runs.some((x: any) => x.startNs < doneNs && x.startNs + x.durationNs > doneNs - h.rttMs * 1e6);
    return { ...h, seen, during, guest: r.packets.slow.find((p: any) => p.type === 8 && p.id === id && p.seq === h.seq) };
  });
  // slow for another reason (nothing ran on CPU 1 meanwhile: the way back, the host, the emulator): never the
  // estimator's, when the guest timed it exactly. A later packet of a poll ('napi-bound') is timed from the
  // poll's raise, an upper bound: one that reached the ring after an estimator run that delayed its poll is
  // blamed on that run (one CI run on 5.10: host RTT 8.6 ms, bound wait 24.3 ms, the run 12 ms at its start)
  const elsewhere = slow.filter((h) => !h.during);
  assert.equal(
    elsewhere.filter((h) => blamed(h.guest) && h.guest.path !== 'napi-bound').length,
    0,
    'a request the estimator did not overlap is not blamed on it (exact waits)',
  );
  process.stderr.write(
    `the host saw ${slow.length} requests >= 5 ms over the median RTT; ${slow.length - elsewhere.length} while an estimator run was on CPU 1\n`,
  );
  const j = judgeShare(
    {
      what: 'requests the host saw >= 5 ms slow while the estimator ran, slow in the guest (timed from the interrupt) and blamed on it',
      samples: slow.filter((h) => h.during),
      window: (h) => packetWindow(h.seen),
      ok: (h) => blamed(h.guest),
      minShare: 0.9,
      minSamples: 5,
      noise: NOISE.attribution,
    },
    pausesOf(r),
  );
  if (!timingVerdict(t, [j])) return;
  assert.equal(r.verdict.culprit?.culprit, EST, r.verdict.text);
  assert.equal(r.verdict.culprit.cpu, 1);
  assert.match(r.verdict.text, /^Verdict: estimation_timer \[ip_vs\] on CPU 1 \(timer\)/);
}
