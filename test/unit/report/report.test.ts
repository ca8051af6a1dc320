// Unit: aggregation of encoded batches, the report against its JSON Schema (v2),
// the text rendering and the atomic writer. No kernel here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Aggregator } from '../../../src/stream/aggregate';
import { Kallsyms } from '../../../src/host/kallsyms';
import { key52FromHex } from '../../../src/base/address';
import { PROBE_NAMES, ProbeName, ProbeStatus } from '../../../src/kernel/probes';
import { buildReport } from '../../../src/report/model';
import { summarize } from '../../../src/diagnose/summary';
import { HIST_BUCKETS } from '../../../src/kernel/abi';
import { lossText, renderHistogram, renderText, stallEventText } from '../../../src/report/text';
import { stallEvents } from '../../../src/diagnose/attribute';
import { PAUSE_CULPRIT, StallRow } from '../../../src/diagnose/attribute';
import { checkWritable, writeAtomic } from '../../../src/report/write';
import { encode, Kind, Flag, FakeEvent, slowPacket } from '../../encode';
import { tmpFile, validator } from '../../helpers';

const probes = Object.fromEntries(
  PROBE_NAMES.map((p): [ProbeName, ProbeStatus] => [p, { active: true, via: 'tracepoint', mode: 'tp_btf', reason: null, hooks: [] }]),
) as Record<ProbeName, ProbeStatus>;

const TIMER_CB = 0xffffffff8150e200n;
const kallsyms = new Kallsyms('ffffffff8150e200 t bpf_timer_cb\nffffffffc0a01000 t estimation_timer\t[ip_vs]\n');

function sample(): Aggregator {
  const ev: FakeEvent[] = [];
  for (let i = 0; i < 100; i++) {
    ev.push({ kind: Kind.SOFTIRQ, cpu: i % 2, startNs: 1e9 + i * 1e6, durationNs: 20_000 + i, key: 3n, waitNs: 500 + i });
    ev.push({ kind: Kind.SOFTIRQ, cpu: 1, startNs: 1e9 + i * 1e6, durationNs: 3000, key: 1n, flags: Flag.WAIT_UNKNOWN });
  }
  ev.push({ kind: Kind.HRTIMER, cpu: 1, startNs: 2e9, durationNs: 15_000_000, key: TIMER_CB });
  ev.push({ kind: Kind.TIMER, cpu: 0, startNs: 2e9, durationNs: 40_000_000, key: 0xffffffffc0a01000n });
  ev.push({ kind: Kind.TIMER, cpu: 0, startNs: 2e9, durationNs: 1000, key: 0xffffffff99999999n });
  ev.push({
    kind: Kind.PACKET,
    cpu: 1,
    startNs: 3e9,
    durationNs: 2_500_000,
    flags: Flag.SLOW,
    pkt: { saddr: '198.18.0.1', daddr: '198.18.0.2', proto: 1, sport: 4242, dport: 1, type: 8, arrivalCpu: 0 },
  });
  ev.push({
    kind: Kind.PACKET,
    cpu: 0,
    startNs: 3e9,
    durationNs: 0,
    flags: Flag.WAIT_UNKNOWN,
    pkt: { saddr: '198.18.0.2', daddr: '198.18.0.1', proto: 1, sport: 4242, dport: 1, type: 0 },
  });
  // slow TCP packets over IPv6, all during the 15 ms bpf_timer_cb run on CPU 1 (2e9 .. 2.015e9)
  for (let i = 0; i < 4; i++)
    ev.push({
      kind: Kind.PACKET,
      cpu: 1,
      startNs: 2e9 + 1e6 + i * 1e6,
      durationNs: 8e6,
      flags: Flag.SLOW | Flag.IPV6,
      pkt: { saddr: 'fd00::1', daddr: 'fd00::2', proto: 6, sport: 40000, dport: 7000, type: 0x18, arrivalCpu: 0 },
    });
  const agg = new Aggregator({ stallThresholdNs: 1e6 });
  agg.addSteal(1, 120e6); // the hypervisor took 120 ms from CPU 1
  // two batches, the second reusing a different buffer
  agg.consume(encode(ev.slice(0, 150)), 150);
  agg.consume(encode(ev.slice(150)), ev.length - 150);
  return agg;
}

function report(agg = sample()) {
  return buildReport({
    aggregator: agg,
    probes,
    notes: ['test'],
    drops: { total: 0, perCpu: [0, 0], badRecords: 0, consumeErrors: 0 },
    kallsyms,
    start: { wall: new Date(0), monoNs: 1e9, realtimeOffsetNs: 0 },
    endWall: new Date(1000),
    possibleCpus: 2,
    command: ['record'],
    version: '0.0.0',
  });
}

test('aggregation counts, per-CPU histograms and ICMP packets', () => {
  const agg = sample();
  assert.deepEqual(agg.events, { softirq: 200, timer: 2, hrtimer: 1, packet: 6, func: 0, pause: 0, task: 0, wakeup: 0, unknown: 0 });
  assert.equal(agg.softirq[0]![3]!.count, 50);
  assert.equal(agg.softirq[1]![3]!.count, 50);
  assert.equal(agg.softirqWait[1]![1], undefined, 'unknown waits are not recorded');
  assert.equal(agg.softirqWait[0]![3]!.min, 500);
  assert.equal(agg.icmp.length, 2);
  const { attribution: _, ...expected } = slowPacket({ startNs: 3e9, ifindex: 0, seq: 1, waitNs: 2_500_000, path: 'backlog' });
  assert.deepEqual(agg.icmp[0], expected);
  assert.equal(agg.icmp[1].waitNs, null);
  const slow = agg.slowPackets();
  assert.equal(slow.length, 5, 'the slow ICMP request and the four slow TCP packets');
  assert.deepEqual(
    { family: slow[1].family, proto: slow[1].proto, saddr: slow[1].saddr, sport: slow[1].sport, dport: slow[1].dport, id: slow[1].id },
    { family: 6, proto: 'tcp', saddr: 'fd00::1', sport: 40000, dport: 7000, id: null },
  );
  assert.equal(agg.stalls().length, 2, 'the 15 ms and 40 ms timer runs are stalls');
  assert.equal(agg.timers.get(key52FromHex('ffffffff8150e200'))!.perCpu[1]!.max, 15_000_000);
});

test('pauses: every late hard hrtimer counts, those past --stall-ms are stalls named as pauses, and a packet waiting across one is blamed on it', () => {
  const agg = sample();
  const tick = 0xffffffff81111000n;
  agg.consume(
    encode([
      { kind: Kind.PAUSE, cpu: 0, startNs: 4e9, durationNs: 500_000, key: tick }, // under the stall threshold
      { kind: Kind.PAUSE, cpu: 1, startNs: 5e9, durationNs: 240e6, key: tick },
      {
        kind: Kind.PACKET,
        cpu: 1,
        startNs: 5e9 - 1e6,
        durationNs: 245e6,
        flags: Flag.SLOW,
        pkt: { saddr: '198.18.0.1', daddr: '198.18.0.2', proto: 17, sport: 5000, dport: 53, arrivalCpu: 0 },
      },
    ]),
    3,
  );
  assert.equal(agg.events.pause, 2);
  assert.equal(agg.pauses[1]!.max, 240e6);
  assert.equal(agg.pauses[0]!.count, 1);
  const pauses = agg.stalls().filter((s) => s.kind === 'pause');
  assert.deepEqual(
    pauses.map((s) => [s.cpu, s.durationNs]),
    [[1, 240e6]],
  );
  assert.equal(new Aggregator().merge(agg).pauses[1]!.max, 240e6, 'merge keeps pauses');
  const r = report(agg);
  const validate = validator();
  assert.ok(validate(JSON.parse(JSON.stringify(r))), JSON.stringify(validate.errors, null, 1));
  assert.equal(r.meta.events.pause, 2);
  const row = r.stalls.rows.find((s) => s.kind === 'pause')!;
  assert.deepEqual({ culprit: row.culprit, cpu: row.cpu, startNs: row.startNs }, { culprit: PAUSE_CULPRIT, cpu: 1, startNs: 5e9 });
  const udp = r.packets.slow.find((p) => p.proto === 'udp')!;
  assert.equal(udp.attribution?.culprit, PAUSE_CULPRIT);
  assert.match(renderText(r), /host pause or IRQs off/);
});

test('meta.events.total is the sum of its parts, pauses included', () => {
  const agg = sample();
  agg.consume(encode([{ kind: Kind.PAUSE, cpu: 1, startNs: 5e9, durationNs: 2e6, key: 0xffffffff81111000n }]), 1);
  const e = report(agg).meta.events;
  const { total, ...parts } = e;
  assert.equal(
    total,
    Object.values(parts).reduce((a, b) => a + b, 0),
  );
  assert.ok(e.pause >= 1);
});

test('--max-packets 0 keeps no packet and counts every one as not kept', () => {
  const agg = new Aggregator({ maxPackets: 0 });
  const pkt = (seq: number) => ({
    kind: Kind.PACKET,
    cpu: 1,
    startNs: 1e9 + seq,
    durationNs: 5e6,
    flags: Flag.SLOW,
    pkt: { saddr: '198.18.0.1', daddr: '198.18.0.2', proto: 1, type: 8, sport: 7, dport: seq },
  });
  agg.consume(encode([pkt(1), pkt(2), pkt(3)]), 3);
  assert.equal(agg.icmp.length, 0);
  assert.equal(agg.icmpNotKept, 3);
  assert.equal(agg.slowPackets().length, 0);
  assert.equal(agg.slowPacketsNotKept, 3);
  const r = report(agg);
  assert.equal(r.packets.slow.length, 0);
  assert.equal(r.packets.slowNotKept, 3);
  assert.equal(r.icmp.packetsNotKept, 3);
  assert.ok(validator()(JSON.parse(JSON.stringify(r))));
});

test('losses are named in the text report: drops, bad records, read errors', () => {
  assert.match(lossText({ total: 0, badRecords: 0, consumeErrors: 0 }), /^drops: 0 {2}bad records: 0 {2}read errors: 0$/);
  const t = lossText({ total: 5, badRecords: 2, consumeErrors: 1 });
  assert.match(
    t,
    /drops: 5 {2}bad records: 2 {2}read errors: 1 {2}\(the ring buffer was full.*; records the reader could not decode.*; reading the ring failed/,
  );
});

test('merging aggregators equals aggregating everything at once', () => {
  const a = sample();
  const b = sample();
  const both = new Aggregator().merge(a).merge(b);
  assert.equal(both.totalEvents, 2 * a.totalEvents);
  assert.equal(both.softirq[1]![3]!.count, 100);
  assert.equal(both.icmp.length, 4);
  assert.equal(both.slowPackets().length, 10);
});

test("a summary is what the report says, reading changes nothing, and the kernel's counts join the streamed ones", () => {
  const agg = sample();
  // what the kernel counted of CPU 0's packets (4 in [2 us, 2.5 us)): kept as it came
  const buckets = new Float64Array(HIST_BUCKETS);
  buckets[4 * (9 + 1) + 0] = 4;
  agg.addKernel('packetWait', 0, 0, { count: 4, sumNs: 8800, maxNs: 2300, unknown: 0, buckets });
  const ctx = { probes, kallsyms };
  const first = summarize(agg, ctx);
  const second = summarize(agg, ctx);
  assert.deepEqual(second, first, 'two summaries in a row are equal');
  const r = report(agg);
  assert.deepEqual(summarize(agg, ctx), first, 'a report in between changes nothing');
  assert.deepEqual(r.cpus, first.cpus);
  assert.deepEqual(r.stalls, first.stalls);
  assert.deepEqual(r.packets, first.packets);
  assert.deepEqual(r.receive, first.receive);
  assert.deepEqual(r.timers, first.timers);
  const pw = r.histograms.find((h) => h.probe === 'packet_wait' && h.cpu === 0)!;
  assert.deepEqual([pw.count, pw.max, pw.buckets], [4, 2300, [{ lo: 2048, hi: 4096, count: 4 }]]);
  assert.equal(first.cpus.find((c) => c.cpu === 0)?.packetWaitMax, 2300);
});

test('the report validates against schema/report.v2.json and names callbacks', () => {
  const r = report();
  const validate = validator();
  assert.ok(validate(JSON.parse(JSON.stringify(r))), JSON.stringify(validate.errors, null, 1));
  const byMax = r.timers.byMax;
  assert.equal(byMax[0].symbol, 'estimation_timer [ip_vs]');
  assert.equal(byMax[1].symbol, 'bpf_timer_cb');
  assert.equal(byMax[2].symbol, '0xffffffff99999999', 'unknown addresses stay addresses');
  const ipvs = r.histograms.filter((h) => h.probe === 'ipvs_estimation');
  assert.deepEqual(
    ipvs.map((h) => [h.cpu, h.max]),
    [
      [0, 40e6],
      [null, 40e6],
    ],
  );
  const nrw = r.histograms.filter((h) => h.probe === 'net_rx_wait');
  assert.deepEqual(
    nrw.map((h) => [h.cpu, h.count]),
    [
      [0, 50],
      [1, 50],
      [null, 100],
    ],
  );
  assert.equal(r.icmp.slowest[0].waitNs, 2_500_000);
  // the four TCP packets waited inside bpf_timer_cb's run on CPU 1: the verdict names it
  assert.equal(r.packets.slow.length, 5);
  assert.equal(r.packets.slow.filter((p) => p.attribution?.culprit === 'bpf_timer_cb').length, 4);
  assert.equal(r.verdict.culprit?.culprit, 'bpf_timer_cb');
  assert.equal(r.verdict.culprit?.cpu, 1);
  assert.equal(r.verdict.culprit?.packets, 4);
  assert.deepEqual(r.verdict.culprit?.flows[0], { proto: 'tcp', saddr: 'fd00::1', sport: 40000, daddr: 'fd00::2', dport: 7000, packets: 4 });
  assert.match(r.verdict.text, /^Verdict: bpf_timer_cb on CPU 1 \(hrtimer\) delayed 4 of 5 slow packets \(80%/);
  assert.deepEqual(r.verdict.hostSteal, [{ cpu: 1, ns: 120e6, share: 0.12 }]);
  assert.match(r.verdict.text, /Host steal: the hypervisor took 120ms from CPU 1 \(12%\) of this trace/);
  assert.match(r.verdict.text, /Flows hit: tcp \[fd00::1\]:40000 -> \[fd00::2\]:7000 \(4\)/);
});

test('the schema rejects a report that breaks it', () => {
  const validate = validator();
  const r = JSON.parse(JSON.stringify(report()));
  r.histograms[0].count = -1;
  assert.equal(validate(r), false);
  const r2 = JSON.parse(JSON.stringify(report()));
  delete r2.meta.drops;
  assert.equal(validate(r2), false);
});

test('text rendering has the per-CPU table, callbacks and bpftrace-style histograms', () => {
  const text = renderText(report());
  assert.match(text, /^Verdict: bpf_timer_cb on CPU 1/, 'the verdict comes first');
  assert.match(text, /slowest packets \(of 5\):\n {2}tcp \[fd00::1\]:40000 -> \[fd00::2\]:7000 {2}waited 8.00ms {2}cpu 0->1 {2}bpf_timer_cb on CPU 1/);
  assert.match(text, /CPU\s+pkt wait p99\s+max\s+NET_RX wait p99/);
  assert.match(text, /estimation_timer \[ip_vs\]\s+timer\s+0\s+1/);
  assert.match(text, /@net_rx_wait_ns\[cpu 0\]:\n\[256, 512\)\s+6 \|@+\s*\|\n\[512, 1K\)\s+44 \|@+\|/);
  const h = renderHistogram(
    '@x',
    [
      { lo: 1024, hi: 2048, count: 3 },
      { lo: 1048576, hi: 2097152, count: 1 },
    ],
    6,
  );
  assert.equal(h, '@x:\n[1K, 2K)                   3 |@@@@@@|\n[1M, 2M)                   1 |@@    |');
});

test('atomic write replaces whole files and leaves the old one on failure', () => {
  const file = tmpFile('report.json');
  fs.writeFileSync(file, 'old report');
  writeAtomic(file, 'new report');
  assert.equal(fs.readFileSync(file, 'utf8'), 'new report');
  fs.mkdirSync(file + '.dir');
  assert.throws(() => writeAtomic(file + '.dir', 'x'));
  assert.deepEqual(
    fs.readdirSync(path.dirname(file)).filter((f) => f.endsWith('.tmp')),
    [],
    'no temp file left',
  );
  assert.equal(fs.readFileSync(file, 'utf8'), 'new report');
  assert.throws(() => checkWritable('/nonexistent/dir/x.json'), /directory \/nonexistent\/dir does not exist/);
  assert.throws(() => checkWritable(file + '.dir'), /is a directory/);
});

test('a callback and the softirq it ran in are one stall event', () => {
  const rows: StallRow[] = [
    { cpu: 1, kind: 'softirq', culprit: 'HRTIMER softirq', startNs: 100, durationNs: 15e6 + 200 },
    { cpu: 1, kind: 'hrtimer', culprit: 'bpf_timer_cb', startNs: 150, durationNs: 15e6 },
    { cpu: 0, kind: 'softirq', culprit: 'NET_RX softirq', startNs: 50, durationNs: 2e6 },
    { cpu: 0, kind: 'timer', culprit: 'process_timeout', startNs: 5e6, durationNs: 1e6 },
  ];
  const ev = stallEvents(rows);
  assert.deepEqual(
    ev.map((e) => [e.cpu, stallEventText(e)]),
    [
      [0, 'NET_RX softirq'],
      [1, 'bpf_timer_cb (in HRTIMER softirq)'],
      [0, 'process_timeout'],
    ],
  );
});
