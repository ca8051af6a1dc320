// Judging a SCHED_FIFO spinner's blame (the ksoftirqd and NAPI-thread cases,
// on this host and in the NIC guest): receive stalls it did not overlap must
// not be blamed on it; those it held 5 ms or more, and the requests it held,
// must be, 90 % of the clean samples. A request the spinner did not overlap
// waited for something else (in the guest: a `sleep` of the shell's polling
// loop, a kworker, both seen holding CPU 1 for 5-10 ms): not its to explain.
import assert from 'node:assert/strict';
import { judgeShare, Judgement, packetWindow, pausesOf, SampleWindow } from './excuse';
import { NOISE } from './noise';

export function judgeSpinnerBlame(r: any, spinner: string, stalls: any[], requests: any[], what: string, minRequests = 3): Judgement[] {
  const spun = r.stalls.rows.filter((s: any) => s.kind === 'task' && s.culprit === spinner && s.cpu === 1);
  assert.ok(spun.length >= 3, `the spinner's stretches while receive processing waited: ${spun.length}`);
  const named = (x: any) => x.attribution?.culprit === spinner && x.attribution.kind === 'task';
  const held = (x: any) => spun.some((s: any) => s.startNs < x.startNs && s.startNs + s.durationNs > x.raiseNs);
  assert.equal(stalls.filter((x: any) => !held(x) && named(x)).length, 0, 'a stall the spinner did not overlap is not blamed on it');
  const late = stalls.filter((x: any) => x.waitNs >= 5e6 && held(x));
  const spinning = (p: any) => spun.some((s: any) => s.startNs < p.startNs + p.waitNs && s.startNs + s.durationNs > p.startNs);
  assert.equal(requests.filter((p: any) => !spinning(p) && named(p)).length, 0, 'a request the spinner did not overlap is not blamed on it');
  const stallWindow = (x: any): SampleWindow => ({ cpus: [x.cpu], fromNs: x.raiseNs, toNs: x.startNs });
  const pauses = pausesOf(r);
  return [
    judgeShare(
      {
        what: `${what} the spinner held >= 5 ms, blamed on it`,
        samples: late,
        window: stallWindow,
        ok: named,
        minShare: 0.9,
        minSamples: 5,
        noise: NOISE.attribution,
      },
      pauses,
    ),
    judgeShare(
      {
        what: 'requests that waited >= 5 ms on CPU 1 while the spinner ran, blamed on it',
        samples: requests.filter(spinning),
        window: packetWindow,
        ok: named,
        minShare: 0.9,
        minSamples: minRequests,
        noise: NOISE.attribution,
      },
      pauses,
    ),
  ];
}
