// Unit: top's collector cuts a stream into intervals; snapshots are pure (taking
// one, or changing the window, must not change what the next one says). And
// serve's window of recent intervals stays bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Recent } from '../../../src/serve/recent';
import { PROBE_NAMES, ProbeName, ProbeStatus } from '../../../src/kernel/probes';
import { Aggregator } from '../../../src/stream/aggregate';
import { LiveTrace } from '../../../src/stream/live';
import { Collector } from '../../../src/top/collector';
import { encode, Flag, Kind } from '../../encode';

/** The slice of a live trace the collector reads, fed by hand: no kernel here. */
function fakeTrace() {
  let drops = 0;
  const probes = Object.fromEntries(
    PROBE_NAMES.map((p): [ProbeName, ProbeStatus] => [p, { active: true, via: 'tracepoint', mode: 'tp_btf', reason: null, hooks: [] }]),
  ) as Record<ProbeName, ProbeStatus>;
  const trace = {
    aggregator: new Aggregator(),
    rotate(): Aggregator {
      const done = trace.aggregator;
      trace.aggregator = done.fresh();
      return done;
    },
    drops: () => ({ total: drops, perCpu: [drops], badRecords: 0, consumeErrors: 0 }),
    session: { probes, notes: [], kallsyms: undefined },
  };
  return { trace, addDrops: (n: number) => (drops += n) };
}

test('snapshots have no side effects: recent drops survive a second snapshot and a window change', () => {
  const { trace, addDrops } = fakeTrace();
  const c = new Collector(trace as unknown as LiveTrace, {});
  trace.aggregator.consume(encode([{ kind: Kind.SOFTIRQ, cpu: 0, startNs: 1e9, durationNs: 5e6, key: 3n, waitNs: 1000 }]), 1);
  addDrops(7);
  c.tick();
  const a = c.snapshot('1s');
  const b = c.snapshot('10s');
  const again = c.snapshot('1s');
  assert.equal(a.dropsRecent, 7);
  assert.equal(b.dropsRecent, 7, 'changing the window does not eat the recent drops');
  assert.equal(again.dropsRecent, 7);
  assert.equal(again.dropsTotal, 7);
  assert.equal(again.summary.stalls.rows.length, 1, 'the same data on every snapshot');
  assert.deepEqual({ ...again, takenAt: 0 }, { ...a, takenAt: 0 }, 'two snapshots of a window in a row are equal');
  c.tick();
  const next = c.snapshot('1s');
  assert.equal(next.dropsRecent, 0, 'no new drops in the next interval');
  assert.equal(next.dropsTotal, 7);
  assert.equal(c.snapshot('all').summary.stalls.rows.length, 1, 'since start keeps it');
});

test("serve's /report window keeps the newest slow packets per chunk and counts the rest, whatever the flood", () => {
  const recent = new Recent(20e9, 5e9, 3);
  const slowBatch = (t0: number, n: number) => {
    const a = new Aggregator({ slowPacketNs: 1e6, maxPackets: 10_000 });
    const events = Array.from({ length: n }, (_, i) => ({
      kind: Kind.PACKET,
      cpu: 1,
      startNs: t0 + i * 1e6,
      durationNs: 2e6,
      flags: Flag.SLOW,
      pkt: { saddr: '198.18.0.1', daddr: '198.18.0.2', proto: 17, sport: 1000 + i, dport: 53 },
    }));
    a.consume(encode(events), events.length);
    return a;
  };
  // six 1 s intervals of 5 slow packets: two chunks of 5 s (the second still open)
  for (let s = 0; s < 6; s++) recent.add(slowBatch(s * 1e9, 5), s * 1e9, (s + 1) * 1e9);
  const w = recent.window(20e9, 6e9)!;
  const listed = w.agg.slowPackets();
  assert.equal(listed.length, 3, 'a window lists at most `listed` packets');
  assert.deepEqual(
    listed.map((p) => p.sport),
    [1002, 1003, 1004],
    'the newest ones, oldest first',
  );
  assert.equal(listed.length + w.agg.slowPacketsNotKept, 30, 'and counts every one it let go');
});
