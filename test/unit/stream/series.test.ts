// Unit: per-CPU time series (stream/series.ts) fed through the aggregator,
// their report section, merging and trimming as top does, and the sparkline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Aggregator } from '../../../src/stream/aggregate';
import { Kallsyms } from '../../../src/host/kallsyms';
import { seriesSection } from '../../../src/report/series';
import { buildReport } from '../../../src/report/model';
import { PROBE_NAMES, ProbeName, ProbeStatus } from '../../../src/kernel/probes';
import { sparkline, sparkLevel } from '../../../src/top/sparkline';
import { encode, Flag, Kind, FakeEvent } from '../../encode';

const S = 1e9;
const ORIGIN = 100 * S;
const kallsyms = new Kallsyms('ffffffff8150e200 t bpf_timer_cb\n');

function feed(agg: Aggregator, ev: FakeEvent[]): Aggregator {
  agg.consume(encode(ev), ev.length);
  return agg;
}

/** NET_RX softirqs on CPU 1 every 10 ms for 3 s; in second 1 one of them waited 15 ms, under a 15 ms callback. */
function threeSeconds(): FakeEvent[] {
  const ev: FakeEvent[] = [];
  for (let i = 0; i < 300; i++) {
    const t = ORIGIN + i * 10e6;
    const wait = i === 150 ? 15e6 : 20_000 + (i % 7) * 1000;
    ev.push({ kind: Kind.SOFTIRQ, cpu: 1, startNs: t, durationNs: 30_000, key: 3n, waitNs: wait });
  }
  ev.push({ kind: Kind.HRTIMER, cpu: 1, startNs: ORIGIN + 1.485 * S, durationNs: 15e6, key: 0xffffffff8150e200n });
  ev.push({ kind: Kind.TIMER, cpu: 0, startNs: ORIGIN + 2.5 * S, durationNs: 2e6, key: 0xffffffff8150e200n });
  ev.push({
    kind: Kind.PACKET,
    cpu: 1,
    startNs: ORIGIN + 1.49 * S,
    durationNs: 9e6,
    flags: Flag.SLOW,
    pkt: { saddr: '198.18.0.1', daddr: '198.18.0.2', proto: 6 },
  });
  return ev;
}

test('series: one point per interval per CPU, NET_RX wait max and p99, softirq time, longest callback, slow packets', () => {
  const agg = feed(new Aggregator({ seriesIntervalNs: S, seriesOriginNs: ORIGIN }), threeSeconds());
  const s = seriesSection(agg.series!, (k) => kallsyms.resolve(k) ?? String(k));
  assert.equal(s.intervalNs, S);
  assert.equal(s.startNs, ORIGIN);
  assert.equal(s.points, 3);
  const c1 = s.cpus.find((c) => c.cpu === 1)!;
  assert.deepEqual(c1.netRxWaitMaxNs, [26_000, 15e6, 26_000]);
  // p99 of 100 waits: the 15 ms one is the top 1 %, so p99 stays with the rest
  assert.ok(c1.netRxWaitP99Ns[1]! < 30_000, `p99 ${c1.netRxWaitP99Ns[1]}`);
  assert.deepEqual(c1.softirqNs, { NET_RX: [3e6, 3e6, 3e6] });
  assert.deepEqual(c1.longestTimer, [null, { symbol: 'bpf_timer_cb', durationNs: 15e6 }, null]);
  assert.deepEqual(c1.slowPackets, [0, 1, 0]);
  const c0 = s.cpus.find((c) => c.cpu === 0)!;
  assert.deepEqual(c0.netRxWaitMaxNs, [null, null, null], 'no NET_RX on CPU 0: null, not 0');
  assert.deepEqual(c0.longestTimer[2], { symbol: 'bpf_timer_cb', durationNs: 2e6 });
});

test('series: without an interval there is none, and the report leaves it out', () => {
  const agg = feed(new Aggregator(), threeSeconds());
  assert.equal(agg.series, undefined);
});

test('series: intervals merged as top does (rotate, merge, keep the last N) give the same points as one pass', () => {
  const ev = threeSeconds().sort((a, b) => a.startNs - b.startNs);
  const whole = feed(new Aggregator({ seriesIntervalNs: S, seriesOriginNs: ORIGIN }), ev);
  // cut the stream at arbitrary points (not on interval boundaries), as top's ticks do
  const total = new Aggregator({ seriesIntervalNs: S, seriesOriginNs: ORIGIN });
  let from = 0;
  for (const cut of [37, 140, 222, ev.length]) {
    const part = total.fresh();
    feed(part, ev.slice(from, cut));
    total.merge(part);
    from = cut;
  }
  const a = seriesSection(whole.series!, String);
  const b = seriesSection(total.series!, String);
  assert.deepEqual(
    b.cpus.map((c) => c.netRxWaitMaxNs),
    a.cpus.map((c) => c.netRxWaitMaxNs),
  );
  assert.deepEqual(
    b.cpus.map((c) => c.softirqNs),
    a.cpus.map((c) => c.softirqNs),
  );
  assert.deepEqual(
    b.cpus.map((c) => c.slowPackets),
    a.cpus.map((c) => c.slowPackets),
  );
  total.series!.keepLast(2);
  const kept = seriesSection(total.series!, String);
  assert.equal(kept.startNs, ORIGIN + S);
  assert.deepEqual(kept.cpus.find((c) => c.cpu === 1)!.netRxWaitMaxNs, [15e6, 26_000]);
});

test('series: a fresh interval starts at its first event, not at the origin', () => {
  const agg = feed(new Aggregator({ seriesIntervalNs: S, seriesOriginNs: ORIGIN }), [
    { kind: Kind.SOFTIRQ, cpu: 0, startNs: ORIGIN + 3600 * S, durationNs: 1000, key: 3n, waitNs: 500 },
  ]);
  assert.equal(agg.series!.base, 3600);
  assert.equal(agg.series!.points, 1, 'an hour in, one point, not 3,601');
  // an event from just before (out of order) moves the start back by one
  feed(agg, [{ kind: Kind.SOFTIRQ, cpu: 1, startNs: ORIGIN + 3599.5 * S, durationNs: 1000, key: 3n, waitNs: 700 }]);
  const s = seriesSection(agg.series!, String);
  assert.equal(s.startNs, ORIGIN + 3599 * S);
  assert.deepEqual(
    s.cpus.map((c) => c.netRxWaitMaxNs),
    [
      [null, 500],
      [700, null],
    ],
  );
});

test('sparkline: fixed log levels, blanks for no data', () => {
  const line = sparkline([null, 50_000, 200_000, 2e6, 15e6, 150e6]);
  assert.equal(line, ' ▁▂▄▆█');
  assert.deepEqual([...line].map(sparkLevel), [-1, 0, 1, 3, 5, 7]);
});

test('reading changes nothing: two sections (and two reports) in a row are equal, events after them still count, and merging leaves its source alone', () => {
  const agg = feed(new Aggregator({ seriesIntervalNs: S, seriesOriginNs: ORIGIN }), threeSeconds());
  const sym = (k: number) => kallsyms.resolve(k) ?? String(k);
  const first = seriesSection(agg.series!, sym);
  assert.deepEqual(seriesSection(agg.series!, sym), first, 'a second read gives the same');
  // a read leaves the open interval open: 100 waits of 5 ms read mid-interval, then 300 short
  // ones in the same interval; its p99 is over all 400 (5 ms), not over the 300 after the read
  const open = feed(
    new Aggregator({ seriesIntervalNs: S, seriesOriginNs: ORIGIN }),
    Array.from({ length: 100 }, (_, i) => ({ kind: Kind.SOFTIRQ, cpu: 1, startNs: ORIGIN + i * 1e6, durationNs: 30_000, key: 3n, waitNs: 5e6 })),
  );
  seriesSection(open.series!, sym);
  feed(
    open,
    Array.from({ length: 300 }, (_, i) => ({ kind: Kind.SOFTIRQ, cpu: 1, startNs: ORIGIN + 0.5 * S + i * 1e6, durationNs: 30_000, key: 3n, waitNs: 20_000 })),
  );
  const p99 = seriesSection(open.series!, sym).cpus[0].netRxWaitP99Ns[0]!;
  assert.ok(p99 >= 4.5e6, `the interval's p99 ${p99} ns forgot the waits read before`);
  // merge reads its argument without changing it
  const source = feed(new Aggregator({ seriesIntervalNs: S, seriesOriginNs: ORIGIN }), threeSeconds());
  const before = seriesSection(source.series!, sym);
  new Aggregator({ seriesIntervalNs: S, seriesOriginNs: ORIGIN }).merge(source);
  assert.deepEqual(seriesSection(source.series!, sym), before);
  // and a report built twice from the same aggregator is the same report
  const probes = Object.fromEntries(
    PROBE_NAMES.map((n) => [n, { active: true, via: 'tracepoint', mode: 'tp_btf', reason: null, hooks: [] }]),
  ) as unknown as Record<ProbeName, ProbeStatus>;
  const input = {
    aggregator: agg,
    probes,
    notes: [],
    drops: { total: 0, perCpu: [0, 0], badRecords: 0, consumeErrors: 0 },
    kallsyms,
    start: { wall: new Date(0), monoNs: ORIGIN, realtimeOffsetNs: 0 },
    endWall: new Date(3000),
    possibleCpus: 2,
    command: [],
    version: 'test',
  };
  assert.deepEqual(buildReport(input), buildReport(input));
});
