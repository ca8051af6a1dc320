// Unit: the mesh's logic without a kernel: which peers a node probes
// (rendezvous hashing), where a slow probe was held (the peer's answer and
// this node's trace of the reply), --peers, and ping's lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SlowPacket } from '../../../src/diagnose/attribute';
import type { ProbeAnswer } from '../../../src/diagnose/explain';
import { choosePeers, heldHere, joinProbe, PeerCandidate, proberWakeups, repliesHeldHere } from '../../../src/diagnose/mesh';
import type { WakeupRow } from '../../../src/diagnose/wakeup';
import { parsePeers } from '../../../src/base/options';
import { UsageError } from '../../../src/base/errors';
import { pingLine } from '../../../src/host/iputils';
import { slowPacket } from '../../encode';

const nodes = (n: number): PeerCandidate[] => Array.from({ length: n }, (_, i) => ({ name: `node-${i}`, address: `10.0.${i >> 8}.${i & 255}` }));
const names = (cs: PeerCandidate[]) => cs.map((c) => c.name).sort();

test('rendezvous: k peers, never itself, the same set whatever the order, and a node that comes or goes changes at most one', () => {
  const all = nodes(200);
  const chosen = choosePeers('node-7', new Set(), all, 10);
  assert.equal(chosen.length, 10);
  assert.ok(!chosen.some((c) => c.name === 'node-7'), 'not itself by name');
  assert.ok(!choosePeers('x', new Set(['10.0.0.3']), all, 200).some((c) => c.address === '10.0.0.3'), 'not itself by address');
  assert.deepEqual(names(choosePeers('node-7', new Set(), [...all].reverse(), 10)), names(chosen), 'order does not matter');
  // a chosen peer leaves: one new one comes in, the other nine stay
  const gone = chosen[3].name;
  const after = choosePeers(
    'node-7',
    new Set(),
    all.filter((c) => c.name !== gone),
    10,
  );
  assert.equal(after.filter((c) => chosen.some((d) => d.name === c.name)).length, 9);
  // a node that was not chosen leaves: nothing changes
  const other = all.find((c) => !chosen.some((d) => d.name === c.name) && c.name !== 'node-7')!;
  assert.deepEqual(
    names(
      choosePeers(
        'node-7',
        new Set(),
        all.filter((c) => c !== other),
        10,
      ),
    ),
    names(chosen),
  );
  // a new node joins: at most one changes
  const joined = choosePeers('node-7', new Set(), [...all, { name: 'node-new', address: '10.9.9.9' }], 10);
  assert.ok(joined.filter((c) => chosen.some((d) => d.name === c.name)).length >= 9);
  // fewer candidates than k: all of them (duplicates by address once)
  assert.equal(choosePeers('a', new Set(), [...nodes(3), nodes(3)[0]], 10).length, 3);
});

test('rendezvous: over 1,000 nodes each is probed by about k others, not by all (the load of a 5,000-node cluster stays k per node)', () => {
  const all = nodes(1000);
  const probedBy = new Map<string, number>();
  for (const self of all) for (const p of choosePeers(self.name, new Set([self.address]), all, 10)) probedBy.set(p.name, (probedBy.get(p.name) ?? 0) + 1);
  const counts = [...probedBy.values()];
  assert.equal(
    counts.reduce((a, b) => a + b, 0),
    10_000,
  );
  assert.ok(Math.max(...counts) <= 30, `the most probed node has ${Math.max(...counts)} probers`);
});

const answer = (state: ProbeAnswer['state'], waitMs: number | null, culprit: string | null = null): ProbeAnswer => ({
  seq: 9,
  state,
  cpu: 1,
  waitMs,
  bound: true,
  culprit,
  kind: culprit ? 'timer' : null,
  culpritCpu: culprit ? 1 : null,
});

/** An echo reply from the peer `saddr` to echo id `id`, held here `waitMs` (by kdamond.0 unless said otherwise). */
const reply = (seq: number, waitMs: number, saddr = '10.0.0.2', id = 77, culprit: string | null = 'kdamond.0[83]'): SlowPacket =>
  slowPacket({
    startNs: seq * 1e9,
    cpu: 0,
    saddr,
    daddr: '10.0.0.1',
    type: 0,
    id,
    seq,
    waitNs: waitMs * 1e6,
    attribution: culprit ? { culprit, kind: 'task', cpu: 0, overlapMs: waitMs, durationMs: waitMs } : null,
  });

test('a slow probe is held at the peer, here, between the two, or not known', () => {
  const peer = joinProbe('icmp', 9, 14, answer('slow', 12.9, 'estimation_timer [ip_vs]'), undefined);
  assert.deepEqual(peer, {
    proto: 'icmp',
    seq: 9,
    rttMs: 14,
    side: 'peer',
    culprit: 'estimation_timer [ip_vs]',
    kind: 'timer',
    cpu: 1,
    waitMs: 12.9,
    pausedMs: 0,
    peerSaw: 'slow',
  });
  assert.equal(joinProbe('icmp', 9, 14, { ...answer('slow', 12.9, 'x'), pausedMs: 3.5 }, undefined).pausedMs, 3.5, "the peer's pause on its wait");
  assert.equal(joinProbe('icmp', 9, 14, answer('slow', 12), undefined).culprit, 'unexplained', 'held there, nothing named');
  const here = joinProbe('icmp', 9, 14, answer('not-slow', null), reply(9, 11));
  assert.deepEqual([here.side, here.culprit, here.waitMs, here.pausedMs, here.peerSaw], ['here', 'kdamond.0[83]', 11, 0, 'not-slow']);
  assert.equal(joinProbe('icmp', 9, 14, answer('not-slow', null), reply(9, 11), 0, 2.5).pausedMs, 2.5, "this node's pause on the reply's wait");
  assert.equal(joinProbe('icmp', 9, 14, answer('slow', 2, 'a'), reply(9, 11)).side, 'here', 'both held it: the longer wait');
  assert.equal(joinProbe('icmp', 9, 14, answer('slow', 12, 'a'), reply(9, 11)).side, 'peer');
  assert.deepEqual(joinProbe('icmp', 9, 14, answer('not-slow', null), undefined), {
    proto: 'icmp',
    seq: 9,
    rttMs: 14,
    side: 'between',
    culprit: null,
    kind: null,
    cpu: null,
    waitMs: null,
    pausedMs: null,
    peerSaw: 'not-slow',
  });
  assert.equal(joinProbe('icmp', 9, 14, null, undefined).side, 'unknown', 'the peer did not answer');
  assert.equal(joinProbe('icmp', 9, 14, null, undefined).peerSaw, null);
  assert.equal(joinProbe('icmp', 9, 14, null, reply(9, 11)).side, 'here', 'what this node saw stands without the peer');
  assert.equal(joinProbe('icmp', 9, null, answer('not-slow', null), undefined).side, 'between', 'a lost probe the peer did not see held');
  const lostOnTheWay = joinProbe('udp', 40001, null, { ...answer('not-seen', null), seq: 40001 }, undefined);
  assert.deepEqual([lostOnTheWay.side, lostOnTheWay.peerSaw], ['between', 'not-seen'], 'a lost UDP probe that never reached the responder');
  // a side holds a probe only when its wait explains at least half of what it took over the usual round trip
  assert.equal(joinProbe('icmp', 9, 14, answer('slow', 1.5, 'a'), undefined, 2).side, 'between', '1.5 ms of 12 ms over the usual: not held there');
  assert.equal(joinProbe('icmp', 9, 14, answer('slow', 6, 'a'), undefined, 2).side, 'peer', '6 ms of 12 ms: held there');
  assert.equal(joinProbe('icmp', 9, 14, answer('slow', 1.5, 'a'), reply(9, 8), 2).side, 'here');
  assert.equal(joinProbe('icmp', 9, null, answer('slow', 1.5, 'a'), undefined, 2).side, 'peer', 'a lost probe held there at all');
  // waits at both ends, neither half of the 12 ms over the usual alone: together they hold it, the longer names it
  const twoEnds = joinProbe('udp', 9, 14, answer('slow', 4, 'a'), reply(9, 3), 2);
  assert.deepEqual([twoEnds.side, twoEnds.culprit, twoEnds.waitMs], ['peer', 'a', 4]);
  assert.equal(joinProbe('udp', 9, 14, answer('slow', 2, 'a'), reply(9, 4), 2).side, 'here');
  assert.equal(joinProbe('udp', 9, 14, answer('slow', 2, 'a'), reply(9, 3), 2).side, 'between', '5 ms of 12: not held');
});

test("this node's slow packets that are the peer's replies to this prober's probes: echo replies by sequence, UDP by the port they came to", () => {
  const got = repliesHeldHere(
    [reply(1, 3), reply(2, 4, '10.0.0.9'), reply(3, 5, '10.0.0.2', 78), { ...reply(4, 6), type: 8 }, reply(1, 9)],
    '10.0.0.2',
    'icmp',
    77,
  );
  assert.deepEqual([...got.keys()], [1]);
  assert.equal(got.get(1)!.waitNs, 9e6, 'the longest of two sightings');
  const udp = (sport: number, dport: number): SlowPacket => ({ ...reply(0, 7), proto: 'udp', type: null, code: null, id: null, seq: null, sport, dport });
  const u = repliesHeldHere([udp(9477, 40001), udp(9478, 40002), udp(9477, 40003), reply(5, 3)], '10.0.0.2', 'udp', 9477);
  assert.deepEqual([...u.keys()].sort(), [40001, 40003]);
});

/** The UDP prober's own wake-up on its probe's socket (own port `sport`), waiting `waitMs` behind `culprit`. */
const proberWake = (sport: number, waitMs: number, culprit = 'node[731]', kind: WakeupRow['kind'] = 'wait'): WakeupRow => ({
  kind,
  cpu: 0,
  wakerCpu: 0,
  pid: 7237,
  tgid: 7229,
  comm: 'node',
  startNs: 50e9,
  durationNs: waitMs * 1e6,
  stolenNs: kind === 'stolen' ? waitMs * 1e6 : 0,
  flow: { proto: 'udp', saddr: null, sport: null, daddr: '10.0.0.1', dport: sport },
  task: 'node[7237]',
  attribution: { culprit, kind: 'task', cpu: 0, overlapMs: waitMs, durationMs: waitMs },
});

test("a UDP probe's reply held here: the prober's own wake-up on the probe's socket, added to the reply's packet wait", () => {
  const tcp = { ...proberWake(40009, 9), flow: { ...proberWake(40009, 9).flow!, proto: 'tcp' as const } };
  const wakes = proberWakeups([proberWake(40001, 3), proberWake(40001, 6), proberWake(40002, 4, 'x', 'stolen'), tcp, { ...proberWake(40003, 5), flow: null }]);
  assert.deepEqual([...wakes.keys()], [40001], 'waits on UDP sockets, by their own port (stolen runs, other protocols and unknown sockets left out)');
  assert.equal(wakes.get(40001)!.durationNs, 6e6, 'the longest of two');
  // the wake-up alone: a probe of 8 ms over a usual 0.5 reads here, not between
  const h = heldHere(undefined, wakes.get(40001), [])!;
  assert.deepEqual(h, { held: { waitNs: 6e6, attribution: wakes.get(40001)!.attribution }, pausedMs: 0 });
  const o = joinProbe('udp', 40001, 8, answer('seen', null), h.held, 0.5, h.pausedMs);
  assert.equal(o.side, 'here');
  assert.equal(o.culprit, 'node[731]');
  assert.equal(o.waitMs, 6);
  assert.equal(joinProbe('udp', 40001, 8, answer('seen', null), undefined, 0.5).side, 'between', 'without it: between');
  // packet and wake-up follow one another: their waits add, the longer names the culprit
  const both = heldHere(reply(0, 2), proberWake(40001, 3, 'node[9]'), [])!;
  assert.equal(both.held.waitNs, 5e6);
  assert.equal(both.held.attribution!.culprit, 'node[9]');
  // a host pause over the wake-up's window counts as paused here
  const pause = { kind: 'pause' as const, cpu: 0, culprit: 'host pause or IRQs off', startNs: 50e9 + 1e6, durationNs: 4e6 };
  assert.equal(heldHere(undefined, proberWake(40001, 6), [pause])!.pausedMs, 4);
  assert.equal(heldHere(undefined, undefined, []), undefined, 'nothing held it here');
});

test('--peers: dns:NAME, or a list of addresses, hosts and NODE=ADDRESS; anything else names the entry', () => {
  assert.deepEqual(parsePeers('dns:jitterscope-peers.monitoring.svc.cluster.local'), { dns: 'jitterscope-peers.monitoring.svc.cluster.local' });
  assert.deepEqual(parsePeers('node-a=10.0.0.7, 10.0.0.8,node-c=[fd00::3],peer.example'), {
    list: [
      { name: 'node-a', host: '10.0.0.7' },
      { name: null, host: '10.0.0.8' },
      { name: 'node-c', host: 'fd00::3' },
      { name: null, host: 'peer.example' },
    ],
  });
  for (const [bad, what] of [
    ['', 'empty'],
    ['10.0.0.7,,10.0.0.8', 'empty'],
    ['dns:', 'dns'],
    ['dns:10.0.0.7', 'dns'],
    ['a b=10.0.0.7', 'a b'],
    ['node=10.0.0.300', '10.0.0.300'],
    ['node=http://x', 'http'],
  ])
    assert.throws(
      () => parsePeers(bad),
      (e: Error) => e instanceof UsageError && e.message.startsWith('--peers:') && e.message.includes(what),
      bad,
    );
});

test("ping's lines: a reply, a request not yet answered, a duplicate, and the rest", () => {
  assert.deepEqual(pingLine('[1796361923.806199] 24 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.034 ms'), {
    reply: { seq: 1, rttMs: 0.034, wallMs: 1796361923806.199 },
  });
  assert.deepEqual(pingLine('[1796361923.585739] no answer yet for icmp_seq=7'), { noAnswer: 7 });
  assert.equal(pingLine('[1796361923.806199] 24 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.034 ms (DUP!)'), null);
  assert.equal(pingLine('[1796361923.384807] From 21.4.0.229 icmp_seq=1 Destination Port Unreachable'), null);
  assert.equal(pingLine('PING 127.0.0.1 (127.0.0.1) 16(44) bytes of data.'), null);
});
