// Unit: the application's share on made-up events (no kernel): wake-up events
// decoded, slow wake-ups and stolen runs explained by the engine, and a
// verdict that stands on them when no packet waited.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Aggregator } from '../../../src/stream/aggregate';
import { renderText } from '../../../src/report/text';
import { encode, Flag, FakeEvent, Kind, report } from '../../encode';
import { validator } from '../../helpers';
import { coveredText } from '../../../src/diagnose/wakeup';

const MS = 1e6;

/** bpf_timer_cb (an hrtimer callback at a made-up address) on CPU 1 for 11 ms at `atMs`. */
const stall = (atMs: number): FakeEvent => ({ kind: Kind.HRTIMER, cpu: 1, startNs: atMs * MS, durationNs: 11 * MS, key: 0xffffffff81234560n });

test('a server woken on CPU 0 that waits for CPU 1 behind a callback: slow wake-ups named after it, and the verdict stands on them', () => {
  const agg = new Aggregator({ slowPacketNs: 1 * MS, stallThresholdNs: 1 * MS });
  const events: FakeEvent[] = [];
  for (let i = 0; i < 5; i++) {
    const t = 1000 + i * 200;
    events.push(stall(t));
    // woken 2 ms into the stall by NET_RX on CPU 0, it ran on CPU 1 when the stall ended; its socket streams just
    // before it (four of them: a lost flow record leaves the wake-up without one)
    if (i < 4)
      events.push({
        kind: Kind.WAKE_FLOW,
        cpu: 1,
        startNs: (t + 2) * MS,
        durationNs: 0,
        key: 812n,
        pkt: { saddr: '10.92.0.2', daddr: '10.92.0.1', proto: 6, sport: 41000 + i, dport: 7799 },
      });
    events.push({ kind: Kind.WAKEUP, cpu: 1, startNs: (t + 2) * MS, durationNs: 9 * MS, key: 812n, wake: { comm: 'python3', pid: 812, wakerCpu: 0 } });
  }
  // a stolen run: 5 ms of a 6 ms run taken by a stall on top of it; its flow an unconnected UDP socket (IPv4-mapped)
  events.push(stall(3000), {
    kind: Kind.WAKE_FLOW,
    cpu: 1,
    startNs: 2999 * MS,
    durationNs: 0,
    key: 812n,
    flags: Flag.STOLEN | Flag.IPV6,
    pkt: { saddr: '::', daddr: '::ffff:a5c:1', proto: 17, sport: 0, dport: 5353 },
  });
  events.push({
    kind: Kind.WAKEUP,
    cpu: 1,
    startNs: 2999 * MS,
    durationNs: 12 * MS,
    flags: Flag.STOLEN,
    key: 812n,
    wake: { comm: 'python3', pid: 812, stolenNs: 11 * MS },
  });
  agg.consume(encode(events), events.length);
  assert.equal(agg.events.wakeup, 6);
  const r = report(agg);
  const validate = validator();
  assert.ok(validate(JSON.parse(JSON.stringify(r))), JSON.stringify(validate.errors?.slice(0, 3)));
  const rows = r.wakeups!.slow;
  assert.deepEqual(
    rows.map((x) => [x.kind, x.task, x.wakerCpu, x.attribution?.cpu]),
    [...Array(5).fill(['wait', 'python3[812]', 0, 1]), ['stolen', 'python3[812]', null, 1]],
  );
  assert.ok(
    rows.every((x) => x.attribution?.kind === 'hrtimer'),
    'each explained by the callback',
  );
  const v = r.verdict;
  assert.equal(v.culprit?.basis, 'wakeups', v.text);
  assert.deepEqual(
    rows.map((x) => x.flow?.sport ?? x.flow?.saddr),
    [41000, 41001, 41002, 41003, undefined, null],
    'each wake-up takes the flow streamed before it, and only that one',
  );
  assert.deepEqual(rows[5].flow, { proto: 'udp', saddr: null, sport: null, daddr: '10.92.0.1', dport: 5353 });
  assert.deepEqual(v.culprit?.wakeups, {
    explained: 6,
    of: 6,
    stolen: 1,
    ready: 0,
    p50Ms: 9,
    maxMs: 11,
    tasks: ['python3[812]'],
    flows: [
      { flow: 'tcp 10.92.0.2 -> 10.92.0.1:7799', count: 4 },
      { flow: 'udp * -> 10.92.0.1:5353', count: 1 },
    ],
  });
  assert.match(v.text, /Their sockets: tcp 10\.92\.0\.2 -> 10\.92\.0\.1:7799 \(4\), udp \* -> 10\.92\.0\.1:5353 \(1\)/);
  assert.match(
    v.text,
    /held python3\[812\] 6 times after receive processing woke them \(6 of 6 slow wake-ups, 1 of them runs it took time from; p50 9\.0 ms, max 11\.0 ms\); their packets were not slow/,
  );
  const text = renderText(r);
  assert.match(
    text,
    /slow wake-ups \(tasks woken by receive processing, or already awake when their data arrived, that waited 1\.00ms or more to run, or lost that much of their run\): 6; longest:/,
  );
  assert.match(text, /python3\[812\] lost 11\.0 ms of a 12\.0 ms run on CPU 1 to softirqs \(udp \* -> 10\.92\.0\.1:5353\): /);
});

test('a server already awake when its data arrives (JS_F_READY): its wait is explained like a wake-up, the share covered shown, and counted apart', () => {
  const agg = new Aggregator({ slowPacketNs: 1 * MS, stallThresholdNs: 1 * MS });
  const events: FakeEvent[] = [];
  for (let i = 0; i < 4; i++) {
    const t = 1000 + i * 200;
    events.push(stall(t));
    // its data became ready 3 ms into the stall (NET_RX on CPU 0); it ran 8 ms later, when the stall ended
    const flags = i < 3 ? Flag.READY : 0;
    events.push({
      kind: Kind.WAKE_FLOW,
      cpu: 1,
      startNs: (t + 3) * MS,
      durationNs: 0,
      key: 900n,
      flags,
      pkt: { saddr: '10.92.0.2', daddr: '10.92.0.1', proto: 6, sport: 41000, dport: 6379 },
    });
    events.push({
      kind: Kind.WAKEUP,
      cpu: 1,
      startNs: (t + 3) * MS,
      durationNs: 8 * MS,
      flags,
      key: 900n,
      wake: { comm: 'redis-server', pid: 900, wakerCpu: 0, queuedNs: i < 3 ? 10 * MS : undefined },
    });
  }
  agg.consume(encode(events), events.length);
  const r = report(agg);
  const validate = validator();
  assert.ok(validate(JSON.parse(JSON.stringify(r))), JSON.stringify(validate.errors?.slice(0, 3)));
  const rows = r.wakeups!.slow;
  assert.deepEqual(
    rows.map((x) => [x.kind, x.wakerCpu, x.queuedNs, x.attribution?.kind, x.attribution?.overlapMs]),
    [...Array(3).fill(['ready', 0, 10 * MS, 'hrtimer', 8]), ['wait', 0, undefined, 'hrtimer', 8]],
  );
  assert.equal(r.verdict.culprit?.basis, 'wakeups', r.verdict.text);
  assert.equal(r.verdict.culprit?.wakeups.ready, 3);
  assert.match(r.verdict.text, /4 of 4 slow wake-ups, 3 of them already awake when their data arrived; p50 8\.0 ms/);
  const text = renderText(r);
  assert.match(
    text,
    /redis-server\[900\], already awake \(runnable for 10\.0 ms\), ran on CPU 1 8\.0 ms after its data arrived \(receive processing on CPU 0\) \(tcp 10\.92\.0\.2:41000 -> 10\.92\.0\.1:6379\): 0xffffffff81234560 on CPU 1, covered 8\.0 of 8\.0 ms \(100 %\)/,
  );
});

test('a culprit is never shown covering more of a wait than the wait', () => {
  assert.equal(coveredText(12, 8), 'covered 8.0 of 8.0 ms (100 %)');
  assert.equal(coveredText(2, 8), 'covered 2.0 of 8.0 ms (25 %)');
});

test("a stolen run is never blamed on a task: time taken from a running task is softirqs'", () => {
  const agg = new Aggregator({ slowPacketNs: 1 * MS, stallThresholdNs: 1 * MS });
  const events: FakeEvent[] = [
    // the woken task itself shows as a task that held CPU 1 while NET_RX was pending there
    { kind: Kind.TASK, cpu: 1, startNs: 100 * MS, durationNs: 20 * MS, key: 812n, task: { comm: 'python3', pid: 812 } },
    { kind: Kind.SOFTIRQ, cpu: 1, startNs: 105 * MS, durationNs: 4 * MS, key: 7n, waitNs: 0 },
    { kind: Kind.WAKEUP, cpu: 1, startNs: 100 * MS, durationNs: 20 * MS, flags: Flag.STOLEN, key: 812n, wake: { comm: 'python3', pid: 812, stolenNs: 4 * MS } },
  ];
  agg.consume(encode(events), events.length);
  const x = report(agg).wakeups!.slow[0];
  assert.equal(x.attribution?.culprit, 'SCHED softirq');
});

test('with no slow packet and no slow wake-up the verdict says there is nothing to name', () => {
  const agg = new Aggregator({ slowPacketNs: 1 * MS, stallThresholdNs: 1 * MS });
  assert.match(report(agg).verdict.text, /^Verdict: no packet waited 1 ms or more, and no task woken by receive processing waited or lost its CPU that long/);
});

test("the tracer's own threads' slow wake-ups are kept apart: never in a report, read by the mesh's prober, and through merges", () => {
  const agg = new Aggregator({ slowPacketNs: 1 * MS, stallThresholdNs: 1 * MS, selfPid: 700 });
  const events: FakeEvent[] = [
    { kind: Kind.WAKEUP, cpu: 0, startNs: 100 * MS, durationNs: 6 * MS, key: 812n, wake: { comm: 'python3', pid: 812 } },
    { kind: Kind.WAKEUP, cpu: 0, startNs: 200 * MS, durationNs: 4 * MS, key: 707n, wake: { comm: 'node', pid: 707, tgid: 700 } },
  ];
  agg.consume(encode(events), events.length);
  assert.deepEqual(
    report(agg).wakeups!.slow.map((x) => x.pid),
    [812],
    "the report has the application's",
  );
  assert.deepEqual(
    agg.ownWakeups().map((x) => [x.pid, x.durationNs]),
    [[707, 4 * MS]],
    "the tracer's own, apart",
  );
  const merged = agg.fresh().merge(agg);
  assert.deepEqual(
    merged.ownWakeups().map((x) => x.pid),
    [707],
    'a window merged from intervals keeps them',
  );
});
