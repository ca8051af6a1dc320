// Kernel: the lab stall (bpf_timer busy-looping ~15 ms every 200 ms on CPU 1)
// must show in timer_callbacks as bpf_timer_cb on CPU 1 with the length the
// stall measured itself, and in the HRTIMER softirq on CPU 1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { LabStall } from '../../src/kernel/lab-stall';
import { native } from '../../src/kernel/addon';
import { LiveTrace } from '../../src/stream/live';
import { buildReport } from '../../src/report/model';
import { injectedPauses, runCli, skipUnlessKernel, tmpFile, readReport, needsTwoCpus } from '../helpers';
import { judgeShare, pausesOf, timingTest } from '../excuse';
import { NOISE } from '../noise';

const STALL_MS = 15;

test('record attributes the lab stall to bpf_timer_cb on CPU 1', async (t) => {
  if (skipUnlessKernel(t) || needsTwoCpus(t)) return;
  await timingTest(t, async ({ scale }) => {
    const out = tmpFile('stall.json');
    const stall = new LabStall({ cpu: 1, stallMs: STALL_MS, periodMs: 200, ...injectedPauses() });
    let r;
    let stats;
    try {
      r = await runCli(['record', '--duration', `${3 * scale}s`, '--out', out]);
      stats = stall.stats();
    } finally {
      stall.stop();
    }
    // what no pause excuses: the run, the report, where the stall ran and how it shows
    assert.equal(r.code, 0, r.stderr);
    const report = readReport(out);
    assert.equal(stats.cpu, 1);
    assert.equal(stats.otherCpuRuns, 0, 'the stall stayed on CPU 1');
    const rows = report.timers.byMax.filter((x: any) => x.symbol === 'bpf_timer_cb');
    assert.equal(rows.length, 1, `bpf_timer_cb rows: ${JSON.stringify(rows)}`);
    assert.equal(rows[0].cpu, 1);
    assert.equal(rows[0].kind, 'hrtimer');
    // the tracer and the stall time the same runs: the tracer never sees one longer than the stall measured
    assert.ok(rows[0].maxNs <= stats.maxNs + 1e6, `traced max ${rows[0].maxNs} vs the stall's own ${stats.maxNs}`);
    const hrt = report.histograms.find((h: any) => h.probe === 'softirq' && h.key === 'HRTIMER' && h.cpu === 1);
    assert.ok(hrt, 'HRTIMER softirq on CPU 1');
    assert.ok(hrt.max >= rows[0].maxNs, `HRTIMER softirq max ${hrt.max} < its callback's ${rows[0].maxNs}`);

    // timing: each run the tracer listed, where no pause touched it
    const pauses = pausesOf(report);
    const runs = report.stalls.rows.filter((x: any) => x.culprit === 'bpf_timer_cb');
    const runWindow = (x: any) => ({ cpus: [x.cpu], fromNs: x.startNs, toNs: x.startNs + x.durationNs });
    const others = report.stalls.rows.filter((x: any) => (x.kind === 'timer' || x.kind === 'hrtimer') && x.culprit !== 'bpf_timer_cb');
    assert.ok(
      runs.every((x: any) => x.cpu === 1),
      'every bpf_timer_cb run listed on CPU 1',
    );
    return [
      judgeShare(
        {
          what: `stall runs timed ${STALL_MS} ms (within 3 ms)`,
          samples: runs,
          window: runWindow,
          ok: (x: any) => Math.abs(x.durationNs / 1e6 - STALL_MS) < 3,
          minShare: 1,
          minSamples: 10,
          noise: NOISE.stallTiming,
        },
        pauses,
      ),
      judgeShare(
        {
          what: 'other callbacks shorter than the stall',
          samples: others,
          window: runWindow,
          ok: (x: any) => x.durationNs < 0.8 * STALL_MS * 1e6,
          minShare: 1,
          minSamples: 0,
          noise: NOISE.control,
        },
        pauses,
      ),
    ];
  });
});

test('raw_tp flavour sees the same stall as tp_btf, and times packets (fallback path)', async (t) => {
  if (skipUnlessKernel(t) || needsTwoCpus(t)) return;
  const stall = new LabStall({ cpu: 1, stallMs: STALL_MS, periodMs: 200 });
  const trace = LiveTrace.start({ flavour: 'raw_tp' });
  const session = trace.session;
  try {
    // loopback pings: the raw_tp packet hooks must find each echo's arrival
    // (the untyped skb id must match between arrival and processing)
    const ping = spawnSync('ping', ['-c', '20', '-i', '0.05', '-q', '127.0.0.1'], { encoding: 'utf8' });
    assert.equal(ping.status, 0, ping.stderr);
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    trace.stop();
    stall.stop();
  }
  assert.equal(session.flavour, 'raw_tp');
  assert.match(session.probes.timer_callbacks.mode!, /^raw_tp/);
  const now = new Date();
  const r = buildReport({
    aggregator: trace.aggregator,
    probes: session.probes,
    notes: session.notes,
    drops: session.drops(),
    kallsyms: session.kallsyms,
    start: { wall: now, monoNs: 0, realtimeOffsetNs: 0 },
    endWall: now,
    possibleCpus: native().numPossibleCpus,
    command: [],
    version: 'test',
  });
  const row = r.timers.byMax.find((x) => x.symbol === 'bpf_timer_cb');
  assert.ok(row && row.cpu === 1 && row.maxNs > 0.8 * STALL_MS * 1e6, JSON.stringify(row));
  assert.ok(trace.aggregator.events.softirq > 0);
  const echoes = trace.aggregator.icmp.filter((p) => p.proto === 'icmp' && p.type === 8 && p.daddr === '127.0.0.1');
  assert.ok(echoes.length >= 20, `${echoes.length} echo requests streamed`);
  const timed = echoes.filter((p) => p.waitNs !== null);
  assert.ok(timed.length >= 0.9 * echoes.length, `${timed.length} of ${echoes.length} echo requests with a known wait`);
});
