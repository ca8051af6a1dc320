// Kernel: `jitterscope ping` across two namespaces with RPS steering to CPU 1,
// with and without `jitterscope lab` stalling CPU 1, and its bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { CLI, NetnsPair, readReport, runCli, sh, skipUnlessKernel, tmpFile, tracerPrograms, waitFor, needsTwoCpus, startLab } from '../helpers';
import { judgeShare, pausesOf, replyWindow, timingTest } from '../excuse';
import { NOISE } from '../noise';

/**
 * `count` pings 23 ms apart through `jitterscope ping`: not a divisor of the
 * stall's 200 ms period, so the requests sweep across its phase; ~6 % of them
 * land in a stall's first 12 ms.
 */
function pingFromA(net: NetnsPair, out: string, count = 200) {
  const r = spawnSync(
    'ip',
    ['netns', 'exec', net.a, 'taskset', '-c', '0', process.execPath, CLI, 'ping', net.addrB, '-c', String(count), '-i', '23', '--slow-ms', '3', '--out', out],
    { encoding: 'utf8' },
  );
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The slow replies of a ping report, each with its window (ping ran on CPU 0). */
function slowReplies(r: any) {
  const window = (x: any) => replyWindow(x, r.meta.clock.realtimeOffsetNs, [0]);
  return { slow: (r.ping.replies as any[]).filter((x) => x.slow), window, pauses: pausesOf(r) };
}

test('ping names bpf_timer_cb on CPU 1 behind the slow replies; a control run names nothing', async (t) => {
  if (skipUnlessKernel(t) || needsTwoCpus(t)) return;
  const net = new NetnsPair();
  t.after(() => net.destroy());
  // RPS steers what arrives on either end to CPU 1; ping runs on CPU 0
  sh(`ip netns exec ${net.a} sh -c 'echo 2 > /sys/class/net/va/queues/rx-0/rps_cpus'`);

  await timingTest(t, async ({ scale }) => {
    // control first: RPS on CPU 1 but no stall
    const control = tmpFile('control.json');
    const c = pingFromA(net, control, 200 * scale);
    assert.equal(c.code, 0, c.stderr);
    const cr = readReport(control);
    assert.equal(cr.ping.verdict.received, 200 * scale);
    assert.equal(cr.ping.replies.filter((x: any) => x.attribution?.culprit === 'bpf_timer_cb').length, 0, 'no lab: nothing is bpf_timer_cb');
    if (cr.ping.verdict.culprit === null) assert.match(c.stdout, /No slow replies|No culprit found|No culprit in this kernel/);
    const cs = slowReplies(cr);
    return [
      judgeShare(
        {
          what: 'control: slow replies not blamed on the lab stall (bpf_timer_cb)',
          samples: cs.slow,
          window: cs.window,
          // a task or kernel thread that held the CPU is real and named; the stall that is not running must not be
          ok: (x: any) => x.attribution?.culprit !== 'bpf_timer_cb',
          minShare: 1,
          minSamples: 0,
          noise: NOISE.control,
        },
        cs.pauses,
      ),
    ];
  });

  // the lab stall on CPU 1, with RPS on vb set (and later restored) by `lab`
  const lab = await startLab(net);
  t.after(() => lab.kill());
  assert.equal(sh(`ip netns exec ${net.b} cat /sys/class/net/vb/queues/rx-0/rps_cpus`).trim(), '2');

  await timingTest(t, async ({ scale }) => {
    const out = tmpFile('ping.json');
    const p = pingFromA(net, out, 200 * scale);
    assert.equal(p.code, 0, p.stderr);
    const r = readReport(out);
    const rows = r.ping.replies as any[];
    assert.equal(rows.length, 200 * scale);
    const offCpu1 = rows.filter((x) => x.requestCpu !== 1 || x.replyCpu !== 1);
    assert.ok(offCpu1.length <= 4 * scale, `RPS put both directions on CPU 1: ${JSON.stringify(offCpu1.slice(0, 3))}`);
    const { slow, window, pauses } = slowReplies(r);
    const named = (x: any) => x.attribution?.culprit === 'bpf_timer_cb' && x.attribution.cpu === 1;
    // the replies a stall run overlapped are the stall's to explain; a reply slow for another reason (a
    // kernel thread such as kdamond on CPU 1, another task) is not, and must not be blamed on it
    const runs = (r.stalls.rows as any[]).filter((s) => s.culprit === 'bpf_timer_cb' && s.cpu === 1);
    const overlapped = (x: any) => {
      const w = window(x);
      return runs.some((s) => s.startNs < w.toNs && s.startNs + s.durationNs > w.fromNs);
    };
    // each as ping saw it, what the attribution overlapped, and the nearest stall run to ping's window
    const shown = (x: any) => {
      const w = window(x);
      const near = runs
        .map((s) => ({ s, gapMs: Math.max(w.fromNs - (s.startNs + s.durationNs), s.startNs - w.toNs) / 1e6 }))
        .sort((a, b) => a.gapMs - b.gapMs)[0];
      const run = near ? `nearest run ${(near.s.durationNs / 1e6).toFixed(1)} ms, ${near.gapMs.toFixed(2)} ms outside the window` : 'no runs';
      return `seq ${x.seq}: rtt ${x.rttMs} ms at ${x.wallTime}, wait ${x.waitMs} ms (bound ${x.waitBound}), CPUs ${x.requestCpu}/${x.replyCpu} from ${x.arrivalCpus}; overlaps ${JSON.stringify(x.overlaps)}; ${run}`;
    };
    const unoverlapped = slow.filter((x) => named(x) && !overlapped(x));
    assert.deepEqual(
      unoverlapped.map((x) => x.seq),
      [],
      `no reply the stall did not overlap is blamed on it: ${unoverlapped.map(shown).join('; ')}`,
    );
    const share = judgeShare(
      {
        what: 'slow replies a stall overlapped, attributed to bpf_timer_cb on CPU 1',
        samples: slow.filter(overlapped),
        window,
        ok: named,
        minShare: 0.9,
        minSamples: 5,
        noise: NOISE.attribution,
      },
      pauses,
    );
    if (share.verdict === 'pass') {
      // with 90 % of the clean slow replies on it, the verdict must name it
      const v = r.ping.verdict;
      assert.equal(v.culprit?.culprit, 'bpf_timer_cb', v.text);
      assert.equal(v.culprit.cpu, 1);
      assert.ok(Math.abs(v.culprit.runs.p50Ms - 15) < 3, `runs p50 ${v.culprit.runs.p50Ms}`);
      assert.equal(v.rps.interface, 'va');
      assert.equal(v.rps.steersToCulpritCpu, true);
      assert.match(p.stdout, /Culprit: bpf_timer_cb on CPU 1/);
      assert.match(p.stdout, /RPS on va: rx-0=CPU 1 — steers received packets to CPU 1/);
    }
    return [share];
  });

  await lab.stop();
  assert.match(lab.stderr(), /lab: stopped \(SIGINT\) after \d+ stalls/);
  assert.equal(sh(`ip netns exec ${net.b} cat /sys/class/net/vb/queues/rx-0/rps_cpus`).trim(), '0', 'lab restored rps_cpus');
  assert.ok(await waitFor(() => tracerPrograms().length === 0, 3000));
});

test('lab restores RPS and detaches on SIGTERM too', async (t) => {
  if (skipUnlessKernel(t) || needsTwoCpus(t)) return;
  const net = new NetnsPair();
  t.after(() => net.destroy());
  const lab = spawn('ip', ['netns', 'exec', net.b, process.execPath, CLI, 'lab', '--cpu', '1', '--rps', 'vb:0-1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  lab.stderr.on('data', (d) => (err += d));
  const closed = new Promise<number | null>((r) => lab.on('close', r));
  assert.ok(await waitFor(() => err.includes('lab: stalling'), 10000), err);
  assert.equal(sh(`ip netns exec ${net.b} cat /sys/class/net/vb/queues/rx-0/rps_cpus`).trim(), '3');
  const labProgs = () => JSON.parse(sh('bpftool prog show -j')).filter((p: any) => p.name === 'lab_stall_start').length;
  assert.equal(labProgs(), 1);
  lab.kill('SIGTERM');
  assert.equal(await closed, 0, err);
  assert.equal(sh(`ip netns exec ${net.b} cat /sys/class/net/vb/queues/rx-0/rps_cpus`).trim(), '0');
  assert.ok(await waitFor(() => labProgs() === 0, 3000), 'lab program left loaded');
});

test('ping and lab reject bad input with one line, exit 2, nothing attached', async (t) => {
  if (skipUnlessKernel(t)) return;
  const cases = [
    ['ping', 'no-such-host.invalid'],
    ['ping', '127.0.0.1', '--count', '0'],
    ['ping', '127.0.0.1', '--interval', '-5'],
    ['ping', '127.0.0.1', '--interval', '1e9'],
    ['ping', '127.0.0.1', '--interface', 'nosuch0'],
    ['ping'],
    ['ping', ''],
    ['ping', '255.255.255.255'],
    ['ping', '224.0.0.1'],
    ['ping', 'ff02::1'],
    ['ping', '0.0.0.0'],
    ['ping', '-6', '127.0.0.1'],
    ['ping', '-6', 'localhost'],
    ['ping', '-4', '::1'],
    ['lab', '--cpu', '99'],
    ['lab', '--stall-ms', '300', '--period-ms', '200'],
    ['lab', '--rps', 'nosuch0'],
  ];
  for (const args of cases) {
    const r = await runCli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /pinging|lab: stalling|probe |fallback|DeprecationWarning/);
  }
  assert.ok(await waitFor(() => tracerPrograms().length === 0, 3000));
});
