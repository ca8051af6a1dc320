// Unit: the join of a slow probe with the node that delayed it (no kernel): a
// peer's /explain query checks, its answer from attributed slow packets, and
// the prober's reading of answers good and bad.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageError } from '../../../src/base/errors';
import { slowPacket } from '../../encode';
import { validator } from '../../helpers';
import type { SlowPacket, StallRow } from '../../../src/diagnose/attribute';
import { answerQuery, EXPLAIN_SCHEMA_ID, ForbiddenQuery, parseExplainQuery, peerSummary, readAnswer } from '../../../src/diagnose/explain';
import type { WakeupRow } from '../../../src/diagnose/wakeup';

const q = (s: string, caller = '198.18.0.1') => parseExplainQuery(new URLSearchParams(s), caller);

test('a query names an echo id and sequence numbers; anything else is a 400 naming the field; another source is a 403', () => {
  assert.deepEqual(q('proto=icmp&id=4242&seq=3,17,3'), { source: '198.18.0.1', proto: 'icmp', id: 4242, seqs: [3, 17] });
  assert.deepEqual(q('id=1&seq=1', '::ffff:198.18.0.1').source, '198.18.0.1', 'an IPv4-mapped caller is its IPv4 address');
  assert.equal(q('id=1&seq=1&source=198.18.0.1').source, '198.18.0.1', 'its own source may be named');
  for (const [s, field] of [
    ['id=1', 'seq'],
    ['seq=1', 'id'],
    ['id=70000&seq=1', 'id'],
    ['id=1&seq=a,b', 'seq'],
    ['proto=tcp&id=1&seq=1', 'proto'],
    ['id=1&seq=' + Array.from({ length: 201 }, (_, i) => i).join(','), 'seq'],
  ])
    assert.throws(
      () => q(s),
      (e: Error) => e instanceof UsageError && e.message.startsWith(field + ':'),
      s,
    );
  assert.throws(
    () => q('id=1&seq=1&source=198.18.0.9'),
    (e: Error) => e instanceof ForbiddenQuery && /only about the caller's own probes \(198\.18\.0\.1\)/.test(e.message),
  );
});

/** An echo request from `saddr` that waited `waitMs` on CPU 1 in a late run, held by bpf_timer_cb. */
const request = (seq: number, waitMs: number, saddr = '198.18.0.1', id = 4242): SlowPacket =>
  slowPacket({
    startNs: seq * 1e9,
    saddr,
    id,
    seq,
    waitNs: waitMs * 1e6,
    attribution: { culprit: 'bpf_timer_cb', kind: 'hrtimer', cpu: 1, overlapMs: waitMs, durationMs: 15 },
  });

test("the peer answers about the caller's probes only: slow with what held them, or not held", () => {
  const slow = [request(3, 12), request(17, 2), request(5, 30, '198.18.0.9'), request(4, 30, '198.18.0.1', 7)];
  // a host pause on CPU 1 covered 4 ms of seq 3's 12 ms wait
  const pause: StallRow = { cpu: 1, kind: 'pause', culprit: 'host pause or IRQs off', startNs: slow[0].startNs + 2e6, durationNs: 4e6 };
  const a = answerQuery(q('id=4242&seq=3,4,5,17'), { slow, slowThresholdNs: 1e6, slowNotKept: 2 }, 'node-b', 120_000, [pause]);
  assert.equal(a.schema, EXPLAIN_SCHEMA_ID);
  assert.deepEqual([a.slowThresholdMs, a.notKept, a.windowMs], [1, 2, 120_000], 'what the peer could not see is said');
  assert.deepEqual(
    a.probes.map((p) => [p.seq, p.state, p.culprit, p.waitMs, p.bound, p.pausedMs]),
    [
      [3, 'slow', 'bpf_timer_cb', 12, true, 4],
      [4, 'not-slow', null, null, false, 0],
      [5, 'not-slow', null, null, false, 0],
      [17, 'slow', 'bpf_timer_cb', 2, true, 0],
    ],
    "another source's seq 5 and another id's seq 4 are not the caller's",
  );
  const read = readAnswer(JSON.parse(JSON.stringify(a)), [3, 4, 5, 17]);
  assert.match(
    peerSummary({ url: 'http://b:9477/', state: 'answered', node: read.node, detail: null, probes: read.probes }, 4),
    /^at the peer \(node-b, http:\/\/b:9477\/\): 2 of 4 slow replies waited there; bpf_timer_cb on CPU 1 held 2 of them; 2 were not seen held there \(delayed here or between the nodes, or shorter than its threshold\)$/,
  );
});

test("the prober refuses an answer that is not jitterscope's, or is about probes it did not ask about", () => {
  assert.throws(() => readAnswer('hello', [1]), /not a jitterscope\.explain\/v1 answer/);
  assert.throws(() => readAnswer({ schema: 'other', node: 'x', probes: [] }, [1]), /not a jitterscope\.explain\/v1 answer/);
  const row = { seq: 9, state: 'slow', cpu: 1, waitMs: 1, bound: false, culprit: null, kind: null, culpritCpu: null };
  assert.throws(() => readAnswer({ schema: EXPLAIN_SCHEMA_ID, node: 'x', windowMs: 1, probes: [row] }, [1]), /was not asked about/);
  assert.throws(() => readAnswer({ schema: EXPLAIN_SCHEMA_ID, node: 'x', windowMs: 1, probes: [{ ...row, seq: 1, state: 'late' }] }, [1]), /malformed/);
  assert.throws(() => readAnswer({ schema: EXPLAIN_SCHEMA_ID, node: 'x', windowMs: 1, probes: [{ ...row, seq: 1, waitMs: 'long' }] }, [1]), /malformed/);
  assert.throws(() => readAnswer({ schema: EXPLAIN_SCHEMA_ID, node: 'x', windowMs: 1, probes: [{ ...row, seq: 1, pausedMs: -1 }] }, [1]), /malformed/);
  // an older peer's rows, without pausedMs, and the UDP states are read
  assert.equal(readAnswer({ schema: EXPLAIN_SCHEMA_ID, node: 'x', windowMs: 1, probes: [{ ...row, seq: 1 }] }, [1]).probes.length, 1);
  assert.equal(readAnswer({ schema: EXPLAIN_SCHEMA_ID, node: 'x', windowMs: 1, probes: [{ ...row, seq: 1, state: 'not-seen' }] }, [1]).probes.length, 1);
  assert.match(
    peerSummary({ url: 'http://b:9477/', state: 'no-answer', node: null, detail: 'b:9477: ECONNREFUSED', probes: [] }, 3),
    /no-answer \(b:9477: ECONNREFUSED\)/,
  );
});

test("udp: the mesh's probes to the responder's port, by their source ports, from the caller only", () => {
  const dgram = (sport: number, waitMs: number, saddr = '198.18.0.1', dport = 9477): SlowPacket => ({
    ...request(0, waitMs, saddr),
    proto: 'udp',
    type: null,
    code: null,
    id: null,
    seq: null,
    sport,
    dport,
  });
  const query = q('proto=udp&id=9477&seq=40001,40002,40003');
  assert.deepEqual(query, { source: '198.18.0.1', proto: 'udp', id: 9477, seqs: [40001, 40002, 40003] });
  const a = answerQuery(
    query,
    { slow: [dgram(40001, 12), dgram(40002, 9, '198.18.0.9'), dgram(40003, 9, '198.18.0.1', 53), request(40001, 30)], slowThresholdNs: 1e6, slowNotKept: 0 },
    'node-b',
    120_000,
    [],
  );
  assert.deepEqual(
    a.probes.map((p) => [p.seq, p.state, p.waitMs]),
    [
      [40001, 'slow', 12],
      [40002, 'not-slow', null],
      [40003, 'not-slow', null],
    ],
  );
});

test('udp: a probe whose packet was not held, answered by the responder right after a stall on its CPU ended, was held by that stall; else seen, or not seen', () => {
  const stalls: StallRow[] = [
    { cpu: 1, kind: 'softirq', culprit: 'HRTIMER softirq', startNs: 100e6, durationNs: 15.2e6 },
    { cpu: 1, kind: 'hrtimer', culprit: 'bpf_timer_cb', startNs: 100.1e6, durationNs: 15e6 },
    { cpu: 0, kind: 'timer', culprit: 'other_cb', startNs: 200e6, durationNs: 5e6 },
    { cpu: 1, kind: 'pause', culprit: 'host pause or IRQs off', startNs: 114e6, durationNs: 1e6 },
  ];
  const answered: Record<number, { atNs: number; cpu: number }> = {
    40001: { atNs: 115.9e6, cpu: 1 }, // 0.7 ms after bpf_timer_cb ended on its CPU
    40002: { atNs: 130e6, cpu: 1 }, // long after
    40003: { atNs: 205.5e6, cpu: 1 }, // after a stall on another CPU
    40005: { atNs: -40e9, cpu: 1 }, // 40 s before the question: an earlier probe from the same port
  };
  const nowNs = 3e9;
  const ask = (keptSinceNs: number) =>
    answerQuery(q('proto=udp&id=9477&seq=40001,40002,40003,40004,40005'), { slow: [], slowThresholdNs: 1e6, slowNotKept: 0 }, 'node-b', 120_000, stalls, {
      answeredAt: (source, sport) => (source === '198.18.0.1' ? answered[sport] : undefined),
      keptSinceNs,
      nowNs,
    }).probes.map((p) => [p.seq, p.state, p.culprit, p.culpritCpu, p.pausedMs]);
  // the responder's record reaches back 60 s: 40004, never answered, never reached it; nor 40005, whose port's answer is 40 s old
  assert.deepEqual(ask(nowNs - 60e9), [
    [40001, 'slow', 'bpf_timer_cb', 1, 1],
    [40002, 'seen', null, null, 0],
    [40003, 'seen', null, null, 0],
    [40004, 'not-seen', null, null, 0],
    [40005, 'not-seen', null, null, 0],
  ]);
  // a record 10 s deep (a busy responder, or one just started): an unanswered probe may predate it
  assert.deepEqual(ask(nowNs - 10e9)[3], [40004, 'not-slow', null, null, 0]);
});

test("udp: the responder's own slow wake-up on its CPU, just before it answered, holds the probe, by what held that CPU", () => {
  const wake = (startNs: number, waitMs: number, cpu = 1, port = 9477): WakeupRow => ({
    kind: 'wait',
    cpu,
    wakerCpu: 0,
    pid: 7228,
    tgid: 7221,
    comm: 'node',
    startNs,
    durationNs: waitMs * 1e6,
    stolenNs: 0,
    flow: { proto: 'udp', saddr: null, sport: null, daddr: '198.18.0.2', dport: port },
    task: 'node[7228]',
    attribution: { culprit: 'node[7249]', kind: 'task', cpu, overlapMs: waitMs, durationMs: waitMs },
  });
  const answered: Record<number, { atNs: number; cpu: number }> = {
    40001: { atNs: 130e6, cpu: 1 }, // 0.5 ms after its wake-up's switch-in
    40002: { atNs: 140e6, cpu: 1 }, // 10 ms after
    40003: { atNs: 130e6, cpu: 0 }, // on the other CPU
  };
  const ownWakeups = [wake(126e6, 3.5), wake(100e6, 29.4, 1, 5353), wake(120e6, 1)];
  const got = answerQuery(q('proto=udp&id=9477&seq=40001,40002,40003'), { slow: [], slowThresholdNs: 1e6, slowNotKept: 0 }, 'node-b', 120_000, [], {
    answeredAt: (_source, sport) => answered[sport],
    keptSinceNs: -60e9,
    nowNs: 3e9,
    port: 9477,
    ownWakeups,
  }).probes.map((p) => [p.seq, p.state, p.waitMs, p.bound, p.culprit]);
  assert.deepEqual(got, [
    [40001, 'slow', 3.5, false, 'node[7249]'],
    [40002, 'seen', null, false, null],
    [40003, 'seen', null, false, null],
  ]);
  // a wake-up nothing explains: a stall that ended just before names it (as without the wake-up), else it is held, unexplained
  const unexplained = { ...wake(126e6, 3.5), attribution: null };
  const stall: StallRow = { cpu: 1, kind: 'hrtimer', culprit: 'bpf_timer_cb', startNs: 118e6, durationNs: 11e6 };
  const ask = (stalls: StallRow[]) =>
    answerQuery(q('proto=udp&id=9477&seq=40001'), { slow: [], slowThresholdNs: 1e6, slowNotKept: 0 }, 'node-b', 120_000, stalls, {
      answeredAt: (_source, sport) => answered[sport],
      keptSinceNs: -60e9,
      nowNs: 3e9,
      port: 9477,
      ownWakeups: [unexplained],
    }).probes.map((p) => [p.state, p.waitMs, p.bound, p.culprit]);
  assert.deepEqual(ask([stall]), [['slow', 11, true, 'bpf_timer_cb']]);
  assert.deepEqual(ask([]), [['slow', 3.5, false, null]]);
});

test("a ping report's peer section holds every answer state and pausedMs (the schema of ping --explain-from's JSON)", () => {
  const stalls: StallRow[] = [{ cpu: 1, kind: 'pause', culprit: 'host pause or IRQs off', startNs: 100e6, durationNs: 1e6 }];
  const a = answerQuery(q('proto=udp&id=9477&seq=40001,40002'), { slow: [], slowThresholdNs: 1e6, slowNotKept: 0 }, 'node-b', 120_000, stalls, {
    answeredAt: (_source, sport) => (sport === 40001 ? { atNs: 130e6, cpu: 1 } : undefined),
    keptSinceNs: -60e9,
    nowNs: 3e9,
  });
  const held = answerQuery(q('id=4242&seq=3'), { slow: [request(3, 12)], slowThresholdNs: 1e6, slowNotKept: 0 }, 'node-b', 120_000, stalls);
  const peer = { url: 'http://b:9477/', state: 'answered', node: 'node-b', detail: null, probes: [...a.probes, ...held.probes] };
  assert.deepEqual(
    peer.probes.map((p) => p.state),
    ['seen', 'not-seen', 'slow'],
  );
  const validate = validator('report.v2.json', '/definitions/ping/properties/peer');
  assert.ok(validate(JSON.parse(JSON.stringify(peer))), JSON.stringify(validate.errors));
  assert.equal(validate({ ...peer, probes: [{ ...peer.probes[0], pausedMs: -1 }] }), false);
});
