// VM: the NIC path on Debian's 6.1 kernel. The guest has a virtio-net NIC fed
// by this host through a tap device, IPVS with 40,000 services and its
// estimation_timer on CPU 1. Packets that reach the NIC while the estimator
// holds the CPU wait in the NIC's ring, are first seen in the NAPI poll after
// the wait, and must still be timed from the interrupt and blamed on the
// estimator. One boot runs test/vm/nic-6.1.sh; the host side pings the guest.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { TEST_NIC, vmSuite } from './vm';
import { readReport, skipIf } from '../helpers';
import { assertNicRingBlamesEstimator, blamed, EST, nicScenario, timingVerdict } from './vm-nic';
import { judgeShare, markedPauses, packetWindow, pausesOf, replyWindow, touchedByPause } from '../excuse';
import { judgeSpinnerBlame } from '../spinner';
import { NOISE } from '../noise';

const suite = vmSuite('debian-6.1', 'nic-6.1.sh', 1_500_000, TEST_NIC);
before(() => suite.boot());

test("NIC (a): interrupt on the estimator's CPU, RPS off: the requests the host saw slow are slow in the guest, from the interrupt, blamed on estimation_timer", (t) => {
  const dir = suite.job(t);
  if (!dir) return;
  assertNicRingBlamesEstimator(t, dir, 'irq-on-estimator', 5101);
});

test('NIC (b): control, the interrupt on the other CPU: no estimation_timer blame', (t) => {
  const dir = suite.job(t);
  if (!dir) return;
  const r = nicScenario(dir, 'irq-elsewhere', 0);
  const ours = r.packets.slow.filter((p: any) => p.id === 5102);
  assert.equal(ours.filter((p: any) => p.attribution?.culprit === EST).length, 0, 'no request of this ping blamed on the estimator');
  assert.ok(
    ours.every((p: any) => p.cpu === 0),
    'the requests were processed on CPU 0',
  );
  assert.notEqual(r.verdict.culprit?.culprit, EST, r.verdict.text);
});

test("NIC (e): the article's topology, interrupt on CPU 0 and RPS to the estimator's CPU 1: the verdict names it, weighed by the waits", (t) => {
  const dir = suite.job(t);
  if (!dir) return;
  const r = nicScenario(dir, 'rps-to-estimator', 0);
  // the waits of 5 ms or more an estimator run overlapped; in this emulated guest other things
  // hold a CPU that long too (a 7.6 ms process_timeout, the tracer's own node on CPU 0): never blamed on it
  const runs = r.stalls.rows.filter((x: any) => x.culprit === EST);
  const overlapped = (p: any) =>
    runs.some((x: any) => [p.cpu, p.arrivalCpu].includes(x.cpu) && x.startNs < p.startNs + p.waitNs && x.startNs + x.durationNs > p.startNs);
  const long = r.packets.slow.filter((p: any) => p.waitNs >= 5e6);
  assert.equal(long.filter((p: any) => !overlapped(p) && blamed(p)).length, 0, 'a wait no estimator run overlapped is not blamed on it');
  const j = judgeShare(
    {
      what: 'waits >= 5 ms an estimator run overlapped, blamed on it',
      samples: long.filter(overlapped),
      window: packetWindow,
      ok: blamed,
      minShare: 0.9,
      minSamples: 5,
      noise: NOISE.attribution,
    },
    pausesOf(r),
  );
  // the tracer's own process (node on CPU 0) holding a CPU is 'self', never a task culprit
  assert.equal(
    r.packets.slow.filter((p: any) => p.attribution?.kind === 'task' && p.attribution.culprit.startsWith('node[')).length,
    0,
    'no wait blamed on a node task: the tracer is said apart',
  );
  if (!timingVerdict(t, [j])) return;
  // the verdict stands on the spikes, which emulator noise cannot outvote: it names the estimator, and
  // only a run whose spikes were nearly all touched by host pauses may be excused, with its figures
  if (r.verdict.culprit?.culprit !== EST) {
    const pauses = pausesOf(r);
    const spikes = r.packets.slow.filter((p: any) => p.waitNs >= 4 * r.packets.slowThresholdNs && !['pause', 'self'].includes(p.attribution?.kind));
    const clean = spikes.filter((p: any) => !touchedByPause(packetWindow(p), pauses));
    if (
      skipIf(
        t,
        clean.length < 5
          ? `host pauses touched ${spikes.length - clean.length} of ${spikes.length} spikes (waits >= 4 ms): too few to hold the verdict to (${r.verdict.text.split('\n')[0]})`
          : null,
      )
    )
      return;
  }
  assert.equal(r.verdict.culprit?.culprit, EST, r.verdict.text);
  assert.match(r.verdict.text, /and [\d.]+ ms of their waiting \(\d+%\)/, 'the verdict states the share of waiting time');
});

test('NIC (f): jitterscope ping from the guest: replies that waited in the NIC ring are blamed on estimation_timer', (t) => {
  const dir = suite.job(t);
  if (!dir) return;
  const r = readReport(path.join(dir, 'ping-nic.json'));
  assert.equal(r.ping.address, TEST_NIC.hostAddr);
  const sent = r.ping.verdict.sent;
  assert.equal(sent, 6000, 'the ping sent what nic-6.1.sh asked');
  assert.ok(r.ping.verdict.received >= 0.95 * sent, `${r.ping.verdict.received} of ${sent} replies`);
  assert.ok(r.ping.replies.filter((x: any) => x.replyCpu === 1).length >= 0.9 * sent, 'the replies were processed on CPU 1, where the interrupt is');
  // a reply slow for another reason (the host's side, the request's way out) waited little in this guest: not this engine's to explain
  // an estimator run among what overlapped the reply's wait (a reply can also wait behind a
  // long NET_RX run of its own, 3.7 ms here under emulation: not the estimator's)
  const waited = r.ping.replies.filter((x: any) => x.slow && x.waitMs !== null && x.waitMs >= 3);
  assert.equal(
    waited.filter((x: any) => !x.overlaps.some((o: any) => o.culprit === EST) && blamed(x)).length,
    0,
    'a reply no estimator run overlapped is not blamed on it',
  );
  const window = (x: any) => replyWindow(x, r.meta.clock.realtimeOffsetNs, [0]);
  const samples = waited.filter((x: any) => x.overlaps.some((o: any) => o.culprit === EST));
  const j = judgeShare(
    {
      what: 'slow replies that waited >= 3 ms in the guest while an estimator run overlapped, blamed on it',
      samples,
      window,
      ok: blamed,
      minShare: 0.9,
      minSamples: 5,
      noise: NOISE.attribution,
    },
    pausesOf(r),
  );
  if (!timingVerdict(t, [j])) return;
  assert.equal(r.ping.verdict.culprit?.culprit, EST, r.ping.verdict.text);
  assert.match(fs.readFileSync(path.join(dir, 'ping-nic.txt'), 'utf8'), /Culprit: estimation_timer \[ip_vs\] on CPU 1/);
});

test("NIC (d): a server on the estimator's CPU, its packets processed on the other: the requests the host saw slow are the server's slow wake-ups, blamed on estimation_timer", (t) => {
  const dir = suite.job(t);
  if (!dir) return;
  const r = nicScenario(dir, 'wakeup', 0);
  const done = fs.readFileSync(path.join(dir, 'wakeup.host-ping.txt'), 'utf8');
  assert.match(done, /exit 0\n$/, `the host's client: ${done}`);
  const pid = Number(fs.readFileSync(path.join(dir, 'wakeup.server.pid'), 'utf8'));
  const client = JSON.parse(fs.readFileSync(path.join(dir, 'wakeup.host-client.json'), 'utf8')) as { rows: { rttMs: number | null }[] };
  // when the server read each request, on the guest's clock: request i is row i (one connection, one request at a time)
  const readAt = JSON.parse(fs.readFileSync(path.join(dir, 'wakeup.server.json'), 'utf8')) as number[];
  assert.equal(readAt.length, client.rows.length, 'the server read every request the host sent');
  assert.ok(!(r.packets.slow as any[]).some((p) => (p.sport === 7799 || p.dport === 7799) && p.cpu === 1), "the flow's packets were processed on CPU 0");
  const rtts = client.rows.map((q) => q.rttMs ?? 0).sort((a, b) => a - b);
  const median = rtts[Math.floor(rtts.length / 2)];
  const runs = r.stalls.rows.filter((x: any) => x.culprit === EST && x.cpu === 1);
  // the requests the host saw >= 5 ms over the median that the server read within 3 ms of an estimator run on
  // CPU 1 ending, the run inside their round trip: they waited behind it (one read 8 ms after a run ended had
  // waited behind a `sleep` of the guest's shell instead)
  const slow = client.rows
    .map((q, i) => ({ rttMs: q.rttMs ?? 0, readNs: readAt[i] }))
    .filter(
      (q) =>
        q.rttMs >= median + 5 &&
        runs.some((x: any) => x.startNs < q.readNs && x.startNs + x.durationNs > q.readNs - 3e6 && x.startNs + x.durationNs > q.readNs - q.rttMs * 1e6),
    );
  const woken = (r.wakeups?.slow ?? []).filter((x: any) => x.tgid === pid);
  // a slow wake-up that ended when the server ran, or a stolen run it was in: the server read the request
  // within 2 ms of it (one CI run: stolen runs that ended 1.2-2.1 ms before the read, the estimator's 13 ms inside)
  const explained = (q: { readNs: number }) =>
    woken.some(
      (x: any) =>
        blamed(x) &&
        (x.kind === 'wait' ? Math.abs(x.startNs + x.durationNs - q.readNs) <= 2e6 : x.startNs <= q.readNs && x.startNs + x.durationNs >= q.readNs - 2.5e6),
    );
  const window = (q: { rttMs: number; readNs: number }) => ({ cpus: [0, 1], fromNs: q.readNs - q.rttMs * 1e6, toNs: q.readNs });
  const j = judgeShare(
    {
      what: 'requests the host saw >= 5 ms slow that the server read right after an estimator run, in a slow wake-up or stolen run of the server blamed on it',
      samples: slow,
      window,
      ok: explained,
      minShare: 0.9,
      minSamples: 5,
      noise: NOISE.attribution,
      show: (q) => `${q.rttMs.toFixed(1)} ms read at ${q.readNs}`,
    },
    pausesOf(r),
  );
  timingVerdict(t, [j]);
});

test("NIC (m): the two-kernel mesh: >= 90 % of the host's slow ICMP probes held in the guest name estimation_timer there (side peer), those a pause touched set aside; the host holds none of the guest's", (t) => {
  const dir = suite.job(t);
  if (!dir) return;
  const done = fs.readFileSync(path.join(dir, 'mesh.host-ping.txt'), 'utf8');
  assert.match(done, /exit 0\n$/, `the host's serve --mesh: ${done}`);
  const host = JSON.parse(fs.readFileSync(path.join(dir, 'mesh.host-mesh.json'), 'utf8'));
  const g = host.peers.find((p: any) => p.name === 'guest');
  assert.ok(g, `the host probes the guest: ${JSON.stringify(host)}`);
  // the guest's serve answered the host's questions: the last one may miss its 3 s deadline (a TCG guest while
  // the estimator holds a CPU: one CI run's round trips reached 1.9 s), but few slow probes went unanswered
  const gState = JSON.stringify({ ...g, recent: g.recent.length });
  assert.ok(g.state === 'answered' || (g.state === 'no-answer' && /no answer in \d+ s/.test(g.detail ?? '')), gState);
  // Not a binomial share: the TCG guest's serve misses its deadline in bursts, and runs left 4.5, 6, 6.2 and 12 % of
  // the slow probes unanswered (over 1,168-5,357 of them). 20 % leaves room for that; a guest that stops answering fails.
  assert.ok(g.bySide.unknown <= 0.2 * g.slow, `the guest left ${g.bySide.unknown} of ${g.slow} slow probes unanswered: ${gState}`);
  // every slow ICMP probe held in the guest's kernel, by the guest's own trace (the guest answers an echo request
  // in its receive softirq, on CPU 1 with the NIC's interrupt), gathered from the host's /mesh each second. Those
  // a host pause touched in the guest (its answer's pausedMs, or the pause named as what held it) are set aside.
  // UDP probes also wait for the guest's responder thread (on CPU 0 with the guest's serve), behind whatever holds
  // that CPU: not judged here.
  const probes: any[] = JSON.parse(fs.readFileSync(path.join(dir, 'mesh.host-probes.json'), 'utf8'));
  const there = probes.filter((o) => o.proto === 'icmp' && o.side === 'peer');
  const tally = new Map<string, number>();
  for (const o of there) {
    const k = `${o.culprit}${o.pausedMs > 0 || o.kind === 'pause' ? ' (paused)' : ''}`;
    tally.set(k, (tally.get(k) ?? 0) + 1);
  }
  const metrics = fs.readFileSync(path.join(dir, 'mesh.host-metrics.txt'), 'utf8');
  const lines = metrics.split('\n').filter((l) => l.startsWith('jitterscope_mesh_slow_probes_total{peer="guest",proto="icmp",side="peer"'));
  process.stderr.write(
    `mesh: host -> guest ${g.sent} probes, ${g.slow} slow (${JSON.stringify(g.bySide)}); ${probes.length} gathered, ICMP held in the guest: ${JSON.stringify([...tally])}; ${lines.join('; ')}\n`,
  );
  const samples = there.map((o, i) => ({ i, paused: o.pausedMs > 0 || o.kind === 'pause', o }));
  const { pauses, window } = markedPauses(samples);
  const j = judgeShare(
    {
      what: `slow ICMP probes the guest's kernel held, blamed on ${EST} there`,
      samples,
      window,
      ok: (s) => s.o.culprit === EST && s.o.cpu === 1,
      minShare: 0.9,
      minSamples: 5,
      noise: NOISE.meshGuest,
      show: (s) => `${s.o.rttMs.toFixed(1)} ms: ${s.o.culprit} on CPU ${s.o.cpu}, waited ${s.o.waitMs} ms`,
    },
    pauses,
  );
  // the metrics count what /mesh listed
  assert.ok(
    lines.some((l) => l.includes(`culprit="${EST}"`)),
    `the metrics name ${EST}: ${lines.join('; ')}`,
  );
  // the other way, B -> A: the host's trace names nothing of the guest's probes: none held there by the
  // estimator (it is the guest's), and few held there at all
  const guest = JSON.parse(fs.readFileSync(path.join(dir, 'mesh.guest.json'), 'utf8'));
  const h = guest.peers.find((p: any) => p.name === 'host');
  assert.ok(h, `the guest probes the host: ${JSON.stringify(guest).slice(0, 400)}`);
  process.stderr.write(`mesh: guest -> host ${h.sent} probes, ${h.slow} slow (${JSON.stringify(h.bySide)})\n`);
  assert.equal(h.state, 'answered', JSON.stringify({ ...h, recent: h.recent.length }));
  assert.ok(!h.recent.some((o: any) => o.side === 'peer' && o.culprit === EST), JSON.stringify(h.recent));
  assert.ok(h.bySide.peer <= Math.max(2, 0.1 * h.slow), `the host held ${h.bySide.peer} of the guest's ${h.slow} slow probes`);
  timingVerdict(t, [j]);
});

test('NIC (c): NET_RX left to ksoftirqd behind a SCHED_FIFO task: the receive stalls and their packets name the task', (t) => {
  const dir = suite.job(t);
  if (!dir) return;
  const r = readReport(path.join(dir, 'ksoftirqd.json'));
  const pid = Number(fs.readFileSync(path.join(dir, 'spinner.pid'), 'utf8'));
  const spinner = `node[${pid}]`;
  // the runs the kernel left to ksoftirqd on CPU 1 (other tasks can hold it too: the tracer's own
  // node threads were seen there for 5-8 ms), and the 10 ms ping's requests among their packets
  const late = (r.receive?.stalls ?? []).filter((x: any) => x.cpu === 1 && x.deferred);
  const packets = r.packets.slow.filter((p: any) => p.id === 5104 && p.cpu === 1 && p.waitNs >= 5e6);
  const judgements = judgeSpinnerBlame(r, spinner, late, packets, 'late NET_RX runs in ksoftirqd');
  if (!timingVerdict(t, judgements)) return;
  assert.equal(r.verdict.culprit?.culprit, spinner, r.verdict.text);
  assert.match(r.verdict.text, /in ksoftirqd/);
  assert.ok(
    r.verdict.advice.some((a: string) => a.includes('SCHED_FIFO')),
    'advice for a task that starves ksoftirqd',
  );
});

test("NIC (g): threaded NAPI behind a SCHED_FIFO task: the NAPI thread's late runs and the requests it polled name the task", (t) => {
  const dir = suite.job(t);
  if (!dir) return;
  const r = readReport(path.join(dir, 'napi-thread.json'));
  const spinner = `node[${Number(fs.readFileSync(path.join(dir, 'spinner.pid'), 'utf8'))}]`;
  assert.match(fs.readFileSync(path.join(dir, 'napi-thread.err'), 'utf8'), /note: NAPI threads \(threaded=1\) [^\n]*napi\/eth0-/);
  assert.ok(r.meta.probes.net_rx_wait.hooks.includes('sched:sched_wakeup'), 'sched_wakeup attached');
  const threadRuns = (r.receive?.stalls ?? []).filter((x: any) => x.napiThread !== null);
  assert.ok(
    threadRuns.every((x: any) => x.cpu === 1),
    'the NAPI threads ran on CPU 1, where they were pinned',
  );
  const requests = r.packets.slow.filter((p: any) => p.id === 5105 && p.type === 8 && p.cpu === 1 && p.waitNs >= 5e6);
  assert.ok(
    requests.every((p: any) => p.path === 'napi' || p.path === 'napi-bound'),
    "timed from the NAPI thread's wakeup",
  );
  const judgements = judgeSpinnerBlame(r, spinner, threadRuns, requests, 'NAPI thread runs');
  if (!timingVerdict(t, judgements)) return;
  assert.equal(r.verdict.culprit?.culprit, spinner, r.verdict.text);
});
