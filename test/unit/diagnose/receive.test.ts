// Unit: receive stalls (NET_RX runs that started late), packets first seen in a
// NAPI poll, tasks that held a CPU while NET_RX waited, and the verdict that
// weighs culprits by the waiting they explain — on made-up events (no kernel).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Aggregator, Packet } from '../../../src/stream/aggregate';
import { attributePackets, attributeReceiveStalls, explainWait, indexStalls, ReceiveStallRow, StallRow } from '../../../src/diagnose/attribute';
import { chooseCulprit, packetVerdict } from '../../../src/diagnose/verdict';
import { renderText } from '../../../src/report/text';
import { NO_HOST_FACTS } from '../../../src/base/host-facts';
import { adviceForCulprit } from '../../../src/diagnose/advice';
import { encode, Flag, Kind, report } from '../../encode';
import path from 'node:path';
import { readJson, ROOT, validator } from '../../helpers';

const MS = 1e6;
const EST = 'estimation_timer [ip_vs]';

function stall(cpu: number, culprit: string, kind: StallRow['kind'], startMs: number, durMs: number): StallRow {
  return { cpu, culprit, kind, startNs: startMs * MS, durationNs: durMs * MS };
}

function packet(cpu: number, arriveMs: number, waitMs: number, saddr = '10.94.0.1'): Packet {
  return {
    startNs: arriveMs * MS,
    cpu,
    arrivalCpu: cpu,
    ifindex: 2,
    family: 4,
    proto: 'udp',
    saddr,
    daddr: '10.94.0.2',
    sport: 5000,
    dport: 53,
    type: null,
    code: null,
    id: null,
    seq: null,
    waitNs: waitMs * MS,
    slow: true,
    path: 'backlog',
  };
}

test('the mixed run: many short unexplained waits do not hide the run behind the long ones (weighed by waiting time and tail)', () => {
  // estimation_timer every 2 s on CPU 1 for 15 ms; RPS puts packets there
  const runs: StallRow[] = [];
  for (let i = 0; i < 12; i++) runs.push(stall(1, EST, 'timer', 1000 + i * 2000, 15));
  const slow: Packet[] = [];
  // 14 explained: 12 long ones (11-17 ms) and 2 shorter ones, each inside a run
  for (let i = 0; i < 12; i++) slow.push(packet(1, 1000 + i * 2000 + 1, 11 + (i % 6)));
  slow.push(packet(1, 1000 + 2 + 2000 * 3, 4), packet(1, 1000 + 5 + 2000 * 5, 5));
  // 35 short waits (1-6 ms) nothing explains, far from the runs
  for (let i = 0; i < 35; i++) slow.push(packet(1, 1500 + Math.floor(i / 3) * 2000 + (i % 3) * 300, 1 + (i % 6) * 0.9, '10.94.0.9'));
  const index = indexStalls(runs);
  const attributed = attributePackets(slow, index);
  assert.equal(attributed.filter((p) => p.attribution?.culprit === EST).length, 14);
  const c = chooseCulprit(attributed, [], runs, 1e6);
  assert.ok(c, 'a culprit is named');
  assert.equal(c.culprit, EST);
  assert.equal(c.basis, 'packets');
  assert.ok(c.share < 0.3, `by count alone it would not be: ${c.share}`);
  assert.ok(c.waitShare > 0.5, `it explains most of the waiting: ${c.waitShare}`);
  assert.deepEqual([c.tail.explained, c.tail.of], [13, 20], 'most of the spikes (waits >= 4 ms, the 20 longest)');
  const v = packetVerdict(attributed, runs, 1, NO_HOST_FACTS);
  assert.match(
    v.text,
    /^Verdict: estimation_timer \[ip_vs\] on CPU 1 \(timer\) delayed 14 of 49 slow packets \(29%.*\) and [\d.]+ ms of their waiting \(\d+%\), 13 of the 20 longest waits/,
  );
  assert.match(v.text, /run_estimation/, 'with the IPVS advice');
});

test('a stray overlap is still not a verdict', () => {
  const runs = [stall(1, 'tick_nohz_handler', 'hrtimer', 100, 2)];
  const slow = attributePackets([packet(1, 100, 2), ...Array.from({ length: 20 }, (_, i) => packet(1, 1000 + i * 100, 3))], indexStalls(runs));
  assert.equal(chooseCulprit(slow, [], runs, 1e6), null);
});

test('receive stalls: with no slow packets the verdict stands on them, naming the waiting flows', () => {
  const runs: StallRow[] = [];
  const receive: ReceiveStallRow[] = [];
  for (let i = 0; i < 20; i++) {
    runs.push(stall(1, EST, 'timer', 1000 + i * 2000, 13 + (i % 8)));
    // NET_RX raised 1 ms into the run (the NIC's interrupt), run right after it
    receive.push({
      cpu: 1,
      raiseNs: (1001 + i * 2000) * MS,
      startNs: (1000 + i * 2000 + 13 + (i % 8)) * MS,
      waitNs: (12 + (i % 8)) * MS,
      runNs: 0.1 * MS,
      deferred: false,
      napiThread: null,
      attribution: null,
    });
  }
  const index = indexStalls(runs);
  const rows = attributeReceiveStalls(receive, index);
  assert.ok(
    rows.every((r) => r.attribution?.culprit === EST),
    'each late run is explained by the run before it',
  );
  // one packet of a late run (first seen in its NAPI poll): short, not slow enough to count
  const v = packetVerdict([], runs, 1, NO_HOST_FACTS, undefined, rows);
  assert.ok(v.culprit);
  assert.equal(v.culprit.basis, 'receive-stalls');
  assert.equal(v.culprit.receiveStalls.explained, 20);
  assert.match(
    v.text,
    /^Verdict: estimation_timer \[ip_vs\] on CPU 1 \(timer\) held receive processing 20 times \(20 of 20 late NET_RX runs; waits p50 1\d\.\d ms, max 19\.0 ms\)/,
  );
  assert.match(v.text, /Receive stalls: 20 NET_RX runs started >= 1 ms after they were raised/);
});

test('a task that held the CPU while NET_RX waited for ksoftirqd is the culprit, unless a callback ran there', () => {
  const task = stall(1, 'spin[4242]', 'task', 100, 30);
  const window = [{ cpus: [1], from: 101 * MS, to: 130 * MS }];
  assert.equal(explainWait(window, 29, indexStalls([task])).attribution?.culprit, 'spin[4242]');
  // a timer callback inside the task's stretch is the more specific answer
  const both = indexStalls([task, stall(1, EST, 'timer', 101, 20)]);
  assert.equal(explainWait(window, 29, both).attribution?.culprit, EST);
});

test("short pauses inside a task's stretch do not take the blame from it; a pause longer than what the task held does", () => {
  const task = stall(1, 'spin[4242]', 'task', 100, 26);
  const window = [{ cpus: [1], from: 101 * MS, to: 126 * MS }];
  // a noisy VM: three 2.5 ms pauses (30 % of the wait) inside a 25 ms spin
  const pauses = [105, 112, 119].map((at) => stall(1, 'host pause or IRQs off', 'pause', at, 2.5));
  const spun = explainWait(window, 25, indexStalls([task, ...pauses]));
  assert.equal(spun.attribution?.culprit, 'spin[4242]', JSON.stringify(spun.overlaps));
  // a 15 ms pause is most of the wait: the task held the CPU for the 10 ms left
  const paused = explainWait(window, 25, indexStalls([task, stall(1, 'host pause or IRQs off', 'pause', 104, 15)]));
  assert.equal(paused.attribution?.kind, 'pause');
  // a 12 ms timer callback in a 13 ms TIMER softirq: the task held 12 ms besides, the callback explains as much
  const timer = explainWait(window, 25, indexStalls([task, stall(1, 'TIMER softirq', 'softirq', 105, 13), stall(1, EST, 'timer', 105.5, 12)]));
  assert.equal(timer.attribution?.culprit, EST, 'the callback and its softirq are counted once');
  // without a task, pauses are the answer as before
  assert.equal(explainWait(window, 25, indexStalls(pauses)).attribution?.kind, 'pause');
});

test('the aggregator keeps late NET_RX runs, tasks and NAPI packets; the report carries them and validates', () => {
  const agg = new Aggregator({ slowPacketNs: 1 * MS, stallThresholdNs: 1 * MS });
  agg.consume(
    encode([
      // a NET_RX run 12 ms after its raise, in ksoftirqd; one 0.2 ms after (not a stall)
      { kind: Kind.SOFTIRQ, cpu: 1, startNs: 1012 * MS, durationNs: 0.1 * MS, key: 3n, waitNs: 12 * MS, flags: Flag.DEFERRED },
      { kind: Kind.SOFTIRQ, cpu: 1, startNs: 2000 * MS, durationNs: 0.1 * MS, key: 3n, waitNs: 0.2 * MS },
      // the task that held CPU 1 meanwhile
      { kind: Kind.TASK, cpu: 1, startNs: 1000 * MS, durationNs: 12 * MS, key: 4242n, task: { comm: 'spin', pid: 4242, tgid: 4240 } },
      // packets of that run: the first exact from the raise, the next an upper bound
      {
        kind: Kind.PACKET,
        cpu: 1,
        startNs: 1000 * MS,
        durationNs: 12.05 * MS,
        flags: Flag.SLOW | Flag.NAPI,
        key: 2n,
        pkt: { saddr: '10.94.0.1', daddr: '10.94.0.2', proto: 1, type: 8, sport: 9, dport: 1 },
      },
      {
        kind: Kind.PACKET,
        cpu: 1,
        startNs: 1000 * MS,
        durationNs: 12.06 * MS,
        flags: Flag.SLOW | Flag.NAPI | Flag.WAIT_BOUND,
        key: 2n,
        pkt: { saddr: '10.94.0.1', daddr: '10.94.0.2', proto: 1, type: 8, sport: 9, dport: 2 },
      },
    ]),
    5,
  );
  assert.equal(agg.events.task, 1);
  const late = agg.receiveStalls();
  assert.equal(late.length, 1);
  assert.deepEqual(late[0], { cpu: 1, raiseNs: 1000 * MS, startNs: 1012 * MS, waitNs: 12 * MS, runNs: 0.1 * MS, deferred: true, napiThread: null });
  assert.deepEqual(
    agg.slowPackets().map((p) => p.path),
    ['napi', 'napi-bound'],
  );
  const r = report(agg);
  const validate = validator();
  assert.ok(validate(JSON.parse(JSON.stringify(r))), JSON.stringify(validate.errors?.slice(0, 3)));
  assert.equal(r.stalls.rows.find((s) => s.kind === 'task')?.culprit, 'spin[4242]');
  assert.equal(r.receive?.stalls[0].attribution?.culprit, 'spin[4242]');
  assert.ok(
    r.packets.slow.every((p) => p.attribution?.culprit === 'spin[4242]'),
    'the packets of the late run too',
  );
  assert.equal(r.meta.events.total, 5);
  const text = renderText(r);
  assert.match(
    text,
    /receive stalls \(NET_RX runs that started 1\.00ms or more after their raise\): 1; longest:\n {2}cpu 1 {2}waited 12\.0ms \(ran in ksoftirqd\) {2}spin\[4242\] on CPU 1/,
  );
  assert.match(text, /waited <= 12\.1ms {2}cpu 1->1 \(NIC ring\)/);
  assert.match(
    adviceForCulprit({ culprit: 'spin[4242]', kind: 'task', cpu: 1 }, 30).join(' '),
    /spin\[4242\] held CPU 1 for up to 30\.0 ms while NET_RX waited there for ksoftirqd/,
  );
});

test("a NAPI thread's late run is a receive stall, not a softirq run, and names the task that held its CPU", () => {
  const agg = new Aggregator({ slowPacketNs: 1 * MS, stallThresholdNs: 1 * MS });
  agg.consume(
    encode([
      // napi/eth0-257 woken at 1000 ms, switched in at 1025 ms behind a SCHED_FIFO spinner
      { kind: Kind.SOFTIRQ, cpu: 1, startNs: 1025 * MS, durationNs: 0.3 * MS, key: 3n, waitNs: 25 * MS, flags: Flag.THREADED, threadPid: 257 },
      { kind: Kind.TASK, cpu: 1, startNs: 1000 * MS, durationNs: 25 * MS, key: 4242n, task: { comm: 'spin', pid: 4242, tgid: 4242 } },
      // the first packet of that poll, timed from the wakeup
      {
        kind: Kind.PACKET,
        cpu: 1,
        startNs: 1000 * MS,
        durationNs: 25.1 * MS,
        flags: Flag.SLOW | Flag.NAPI,
        key: 2n,
        pkt: { saddr: '10.94.0.1', daddr: '10.94.0.2', proto: 17, sport: 53, dport: 4000 },
      },
    ]),
    3,
  );
  assert.equal(agg.receiveStalls().length, 1);
  assert.deepEqual(agg.receiveStalls()[0], {
    cpu: 1,
    raiseNs: 1000 * MS,
    startNs: 1025 * MS,
    waitNs: 25 * MS,
    runNs: 0.3 * MS,
    deferred: false,
    napiThread: 257,
  });
  const r = report(agg);
  assert.equal(agg.events.softirq, 1);
  assert.deepEqual(
    r.histograms.filter((h) => h.probe === 'softirq' || h.probe === 'softirq_wait'),
    [],
    'no NET_RX softirq run was counted',
  );
  const validate = validator();
  assert.ok(validate(JSON.parse(JSON.stringify(r))), JSON.stringify(validate.errors?.slice(0, 3)));
  assert.equal(r.receive?.stalls[0].attribution?.culprit, 'spin[4242]');
  assert.equal(r.packets.slow[0].attribution?.culprit, 'spin[4242]');
  const text = renderText(r);
  assert.match(text, /cpu 1 {2}waited 25\.0ms \(NAPI thread pid 257\) {2}spin\[4242\] on CPU 1/);
  assert.match(text, /1 of them NAPI thread runs, timed from the thread's wakeup/);
});

test('the tracer\'s own process holding a CPU while NET_RX waited is "jitterscope itself": said apart, never the verdict\'s culprit', () => {
  const self = 7000;
  const agg = new Aggregator({ slowPacketNs: 1 * MS, stallThresholdNs: 1 * MS, selfPid: self });
  const events = [];
  // four late NET_RX runs in ksoftirqd on CPU 0, each behind one of the tracer's threads (tid 7003, tgid 7000),
  // and a slow packet in each; one more behind another task
  for (let i = 0; i < 4; i++) {
    const t = 1000 + i * 100;
    events.push(
      { kind: Kind.SOFTIRQ, cpu: 0, startNs: (t + 8) * MS, durationNs: 0.1 * MS, key: 3n, waitNs: 8 * MS, flags: Flag.DEFERRED },
      { kind: Kind.TASK, cpu: 0, startNs: t * MS, durationNs: 8 * MS, key: 7003n, task: { comm: 'node', pid: 7003, tgid: self } },
      {
        kind: Kind.PACKET,
        cpu: 0,
        startNs: t * MS,
        durationNs: 8_050_000,
        flags: Flag.SLOW | Flag.NAPI,
        key: 2n,
        pkt: { saddr: '10.94.0.1', daddr: '10.94.0.2', proto: 17, type: 0, sport: 9, dport: 53 },
      },
    );
  }
  events.push({ kind: Kind.TASK, cpu: 1, startNs: 3000 * MS, durationNs: 9 * MS, key: 812n, task: { comm: 'spin', pid: 812, tgid: 812 } });
  agg.consume(encode(events), events.length);
  const stalls = agg.stalls();
  assert.deepEqual(
    [...new Set(stalls.map((s) => `${s.kind} ${s.key}`))].sort(),
    ['self 7000', 'task 812'],
    "the tracer's threads by its process id; others by their own",
  );
  const r = report(agg);
  const validate = validator();
  assert.ok(validate(JSON.parse(JSON.stringify(r))), JSON.stringify(validate.errors?.slice(0, 3)));
  assert.ok(
    r.packets.slow.every((p) => p.attribution?.culprit === 'jitterscope itself (pid 7000)' && p.attribution.kind === 'self'),
    'each packet names the observer',
  );
  assert.equal(r.verdict.culprit, null, 'the observer is never the culprit');
  assert.deepEqual(r.verdict.self, { culprit: 'jitterscope itself (pid 7000)', count: 8, maxMs: 8, cpus: [0] });
  assert.match(r.verdict.text, /The observer: jitterscope itself \(pid 7000\) held CPU 0 while 8 slow packets, late NET_RX runs or woken tasks waited/);
  // without its process id the same threads are a task like any other, and the culprit
  const plain = new Aggregator({ slowPacketNs: 1 * MS, stallThresholdNs: 1 * MS });
  plain.consume(encode(events), events.length);
  assert.equal(report(plain).verdict.culprit?.culprit, 'node[7003]');
});

test('the spikes decide: a run behind most of the longest waits is named however many short waits nothing explains', () => {
  const runs: StallRow[] = [];
  const slow: Packet[] = [];
  // the estimator: 10 runs of 14 ms, each holding one packet 12 ms
  for (let i = 0; i < 10; i++) {
    runs.push(stall(1, EST, 'timer', 1000 + i * 2000, 14));
    slow.push(packet(1, 1000 + i * 2000 + 1, 12));
  }
  // 400 short waits (1-3 ms) with no cause, and 4 of 5-7 ms behind a callback of their own on CPU 0
  for (let i = 0; i < 400; i++) slow.push(packet(0, 1500 + i * 50, 1 + (i % 5) * 0.5, '10.94.0.9'));
  for (let i = 0; i < 4; i++) {
    runs.push(stall(0, 'process_timeout', 'timer', 30_000 + i * 1000, 7));
    slow.push(packet(0, 30_000 + i * 1000 + 0.5, 5 + i * 0.5, '10.94.0.8'));
  }
  const attributed = attributePackets(slow, indexStalls(runs));
  const c = chooseCulprit(attributed, [], runs, 1 * MS);
  assert.ok(c, 'a culprit is named');
  assert.equal(c.culprit, EST);
  assert.ok(c.share < 0.05 && c.waitShare < 0.3, `by count or waiting alone it would not be: ${c.share}, ${c.waitShare}`);
  assert.deepEqual([c.tail.explained, c.tail.of], [10, 14], 'the spikes: waits >= 4 ms, however many short ones');
  assert.deepEqual(c.rest, { packets: 404, minMs: 1, maxMs: 6.5 });
  const v = packetVerdict(attributed, runs, 1, NO_HOST_FACTS);
  assert.match(v.text, /10 of the 14 longest waits \(>= 5\.0 ms\)/);
  assert.match(v.text, /The other 404 slow packets waited 1\.0-6\.5 ms, with no single cause named here\./);
});

test('a recorded noisy NIC run (fixture): the tracer said apart, the verdict stands on the spikes and names the estimator', () => {
  // test/fixtures/nic-rps-noisy.json: CI's NIC (e) under TCG, 373 slow packets, 132 of them paused, 269 late
  // NET_RX runs (151 in ksoftirqd). As recorded, the verdict named the tracer's own node[403], at nice 0 then
  const r = readJson(path.join(ROOT, 'test', 'fixtures', 'nic-rps-noisy.json'));
  assert.equal(r.verdict.culprit.culprit, 'node[403]', 'as recorded');
  const fresh = (x: any) => ({ ...x, attribution: undefined });
  // node[403..411] were the tracer's threads (no other node ran in that scenario): what the aggregator now calls 'self'
  const asRecorded: StallRow[] = r.stalls.rows;
  const selfApart = asRecorded.map((s) =>
    s.kind === 'task' && s.culprit.startsWith('node[') ? { ...s, kind: 'self' as const, culprit: 'jitterscope itself (pid 403)' } : s,
  );
  const verdict = (rows: StallRow[], extra: Packet[] = []) => {
    const index = indexStalls(rows);
    return packetVerdict(
      attributePackets([...r.packets.slow.map(fresh), ...extra], index),
      rows,
      1,
      NO_HOST_FACTS,
      undefined,
      attributeReceiveStalls(r.receive.stalls.map(fresh), index),
    );
  };
  const v = verdict(selfApart);
  assert.equal(v.culprit?.culprit, EST, v.text);
  assert.equal(v.culprit?.cpu, 1);
  assert.deepEqual([v.culprit?.tail.explained, v.culprit?.tail.of], [20, 20], 'every spike');
  assert.match(v.text, /20 of the 20 longest waits \(>= [\d.]+ ms\)/);
  assert.match(v.text, /The other \d+ slow packets waited 1\.0-[\d.]+ ms, shorter than the spikes, with no single cause named here\./);
  assert.equal(v.self?.culprit, 'jitterscope itself (pid 403)');
  assert.match(v.text, /The observer: jitterscope itself \(pid 403\) held CPU 0 while \d+ slow packets, late NET_RX runs or woken tasks waited/);
  // however many more short waits nothing explains (a busier node, a noisier emulator)
  const noise = Array.from({ length: 2000 }, (_, i) => packet(i % 2, 1e6 + i * 7, 1 + (i % 4) * 0.5, '10.94.0.9'));
  assert.equal(verdict(selfApart, noise).culprit?.culprit, EST, 'not outvoted by 2,000 short waits');
  // with the tracer as a task like any other, it is named for the waits it held up
  const tracerBlamed = (rows: StallRow[]) =>
    attributePackets(r.packets.slow.map(fresh), indexStalls(rows)).filter((p) => p.attribution?.culprit.startsWith('node[')).length;
  assert.ok(tracerBlamed(asRecorded) >= 10, `as a task: ${tracerBlamed(asRecorded)}`);
  assert.equal(tracerBlamed(selfApart), 0, 'said apart');
});

test('a recorded NIC run where a host pause sent a dozen pings into one poll (fixture): bound waits are not spikes', () => {
  // test/fixtures/nic-rps-burst.json: 12 requests first seen in one NAPI poll, each timed from its raise (16-18 ms,
  // upper bounds); counted as spikes they outnumbered the estimator's, and the recorded verdict named nothing
  const r = readJson(path.join(ROOT, 'test', 'fixtures', 'nic-rps-burst.json'));
  assert.equal(r.verdict.culprit, null, 'as recorded');
  const bounds = (r.packets.slow as Packet[]).filter((p) => p.path === 'napi-bound' && p.waitNs! >= 16e6);
  assert.ok(bounds.length >= 12, `the burst's bound waits: ${bounds.length}`);
  const index = indexStalls(r.stalls.rows);
  const fresh = (x: any) => ({ ...x, attribution: undefined });
  const v = packetVerdict(
    attributePackets(r.packets.slow.map(fresh), index),
    r.stalls.rows,
    1,
    NO_HOST_FACTS,
    undefined,
    attributeReceiveStalls(r.receive.stalls.map(fresh), index),
  );
  assert.equal(v.culprit?.culprit, EST, v.text);
  assert.ok(v.culprit!.tail.explained > v.culprit!.tail.of / 2, `most of the spikes: ${v.culprit!.tail.explained} of ${v.culprit!.tail.of}`);
});

test('a NET_RX wait longer than the clock had run (a raise read after its run began) is unknown: no receive stall, no raise before boot', () => {
  const agg = new Aggregator({ slowPacketNs: 1 * MS, stallThresholdNs: 1 * MS });
  // as one 6.1 guest run streamed it: a raise 98 us after the run's start, the u64 difference wrapped
  agg.consume(encode([{ kind: Kind.SOFTIRQ, cpu: 0, startNs: 163026 * MS, durationNs: 0.3 * MS, key: 3n, waitNs: 2 ** 64 - 98304, flags: Flag.DEFERRED }]), 1);
  assert.deepEqual(agg.receiveStalls(), []);
  const r = report(agg);
  assert.ok(validator()(JSON.parse(JSON.stringify(r))));
});
