// Kernel: `jitterscope serve` scraped by a real Prometheus (Debian's package,
// its own config and data directory, on loopback) while the lab stall runs:
// PromQL shows bpf_timer_cb's histogram reaching the stall's bucket and its
// stall counter rising, and no rise in a window without the stall. promtool
// on a scrape; 20 starts and stops leave no program loaded; /report under
// concurrent requests; 4xx for bad paths and windows; bad --listen and a
// taken port refused before anything attaches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { LabStall } from '../../src/kernel/lab-stall';
import { NET_RX_SOFTIRQ, HRTIMER_SOFTIRQ, SOFTIRQ_NAMES } from '../../src/kernel/abi';
import { Histogram } from '../../src/stream/histogram';
import { LiveTrace } from '../../src/stream/live';
import { summarize } from '../../src/diagnose/summary';
import { judgeShare, packetWindow, timingTest } from '../excuse';
import { NetnsPair, runCli, skipUnlessKernel, startCli, startLab, tracerPrograms, validator, waitFor, needsTwoCpus, skipIf } from '../helpers';
import { freePort, soak, soakSummary, udpLoadMissing } from '../../bench/soak';
import { NOISE } from '../noise';

const PROMETHEUS = '/usr/bin/prometheus';
const PROMTOOL = '/usr/bin/promtool';

function needsPrometheus(t: { skip: (m?: string) => void }): boolean {
  return skipIf(t, fs.existsSync(PROMETHEUS) && fs.existsSync(PROMTOOL) ? null : `${PROMETHEUS} is missing (npm test installs Debian's prometheus)`);
}

async function startServe(extra: string[] = []) {
  const port = await freePort();
  const srv = startCli(['serve', '--listen', `127.0.0.1:${port}`, ...extra], /serving http/, { timeoutMs: 20_000 });
  assert.ok(await srv.ready, 'serve never said it was serving');
  const url = (p: string) => `http://127.0.0.1:${port}${p}`;
  return {
    port,
    url,
    get: async (p: string) => {
      const r = await fetch(url(p));
      return { status: r.status, text: await r.text() };
    },
    stop: async () => {
      srv.child.kill('SIGTERM');
      return srv.done;
    },
  };
}

async function promQuery(base: string, q: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const r = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(q)}`);
  const body = (await r.json()) as any;
  if (body.status !== 'success') throw new Error(`${q}: ${JSON.stringify(body)}`);
  return body.data.result;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('serve under a real Prometheus: the stall shows in PromQL, a window without it does not', async (t) => {
  if (skipUnlessKernel(t) || needsTwoCpus(t) || needsPrometheus(t)) return;
  const srv = await startServe();
  t.after(() => srv.stop());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jitterscope-prom-'));
  const promPort = await freePort();
  fs.writeFileSync(
    path.join(dir, 'prometheus.yml'),
    `global: { scrape_interval: 1s, evaluation_interval: 1s }\nscrape_configs:\n  - job_name: jitterscope\n    static_configs: [{ targets: ['127.0.0.1:${srv.port}'] }]\n`,
  );
  const prom = spawn(PROMETHEUS, [`--config.file=${dir}/prometheus.yml`, `--storage.tsdb.path=${dir}/data`, `--web.listen-address=127.0.0.1:${promPort}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let promErr = '';
  prom.stderr!.on('data', (d) => (promErr += d));
  t.after(() => {
    prom.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const base = `http://127.0.0.1:${promPort}`;
  const up = async () => (await promQuery(base, 'up{job="jitterscope"}').catch(() => []))[0]?.value[1] === '1';
  let isUp = false;
  for (let i = 0; i < 60 && !isUp; i++) {
    await sleep(500);
    isUp = await up();
  }
  assert.ok(isUp, `Prometheus never scraped serve: ${promErr.slice(-2000)}`);

  // a quiet window first: no bpf_timer_cb stalls
  await sleep(8000);
  const quiet = await promQuery(base, 'sum(increase(jitterscope_stalls_total{culprit="bpf_timer_cb"}[6s]))');
  assert.ok(!quiet.length || Number(quiet[0].value[1]) === 0, `stalls without the stall: ${JSON.stringify(quiet)}`);

  const stall = new LabStall({ cpu: 1, stallMs: 15, periodMs: 200 });
  t.after(() => stall.stop());
  await sleep(8000);
  const own = stall.stats();
  const stalls = await promQuery(base, 'sum(increase(jitterscope_stalls_total{culprit="bpf_timer_cb"}[6s]))');
  process.stderr.write(`stall ran ${own.runs} times (max ${(own.maxNs / 1e6).toFixed(1)} ms); Prometheus saw ${stalls[0]?.value[1]} stalls in 6 s\n`);
  assert.ok(stalls.length && Number(stalls[0].value[1]) > 5, `bpf_timer_cb stalls in PromQL: ${JSON.stringify(stalls)}`);
  // runs of 15 ms land in the bucket (8.4 ms, 16.8 ms]: the histogram reaches the stall's length
  const inBucket = await promQuery(
    base,
    'sum(jitterscope_timer_callback_seconds_bucket{function="bpf_timer_cb",le="0.016777216"}) - sum(jitterscope_timer_callback_seconds_bucket{function="bpf_timer_cb",le="0.008388608"})',
  );
  assert.ok(inBucket.length && Number(inBucket[0].value[1]) > 5, `bpf_timer_cb runs between 8.4 and 16.8 ms: ${JSON.stringify(inBucket)}`);
  const hrtimer = await promQuery(base, 'sum(jitterscope_softirq_seconds_count{vector="HRTIMER"})');
  assert.ok(hrtimer.length && Number(hrtimer[0].value[1]) > 0, 'HRTIMER softirq histogram');
  stall.stop();

  // promtool on a live scrape
  const scrape = await srv.get('/metrics');
  const check = spawnSync(PROMTOOL, ['check', 'metrics'], { input: scrape.text, encoding: 'utf8' });
  assert.equal(check.status, 0, check.stdout + check.stderr);
  const res = await srv.stop();
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stderr, /detached/);
});

test('serve: /report under concurrent requests, 4xx for bad paths and windows, still serving after', async (t) => {
  if (skipUnlessKernel(t)) return;
  const srv = await startServe(['--report-window', '1m']);
  t.after(() => srv.stop());
  await sleep(2500);
  const validate = validator();
  const replies = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? srv.get('/metrics') : srv.get('/report?window=10s'))));
  for (const [i, r] of replies.entries()) {
    assert.equal(r.status, 200, r.text);
    if (i % 2) assert.match(r.text, /^# HELP jitterscope_/m);
    else assert.ok(validate(JSON.parse(r.text)), JSON.stringify(validate.errors?.slice(0, 3)));
  }
  for (const [p, code, msg] of [
    ['/nope', 404, /not found: \/nope; try \/metrics/],
    ['/report?window=banana', 400, /window: 'banana' is not a duration/],
    ['/report?window=2h', 400, /longer than the 1m kept/],
  ] as const) {
    const r = await srv.get(p);
    assert.equal(r.status, code, `${p}: ${r.text}`);
    assert.match(r.text, msg);
  }
  assert.equal((await srv.get('/healthz')).status, 200, 'still serving');
  const res = await srv.stop();
  assert.equal(res.code, 0, res.stderr);
});

test('serve started and stopped 20 times leaves no BPF program loaded', async (t) => {
  if (skipUnlessKernel(t)) return;
  for (let i = 0; i < 20; i++) {
    const srv = await startServe();
    assert.equal((await srv.get('/healthz')).status, 200);
    const res = await srv.stop();
    assert.equal(res.code, 0, `run ${i}: ${res.stderr}`);
  }
  // the kernel frees a closed program a moment later (deferred work): allow it that
  assert.ok(await waitFor(() => tracerPrograms().length === 0, 3000), `left loaded: ${JSON.stringify(tracerPrograms())}`);
});

test('serve: bad --listen and a taken port are one line, exit 2, nothing attached', async (t) => {
  if (skipUnlessKernel(t)) return;
  const bad = await runCli(['serve', '--listen', 'nonsense']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--listen: 'nonsense' is not HOST:PORT/);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
  const holder = net.createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', () => r()));
  t.after(() => holder.close());
  const port = (holder.address() as net.AddressInfo).port;
  const taken = startCli(['serve', '--listen', `127.0.0.1:${port}`], /never/);
  const res = await taken.done;
  assert.equal(res.code, 2);
  assert.match(res.stderr, new RegExp(`--listen 127\\.0\\.0\\.1:${port}: the port is in use`));
  assert.doesNotMatch(res.stderr, /attached|probe/, 'nothing was attached');
  assert.ok(await waitFor(() => tracerPrograms().length === 0, 3000), `left loaded: ${JSON.stringify(tracerPrograms())}`);
  const other = await runCli(['serve', '--listen', '192.0.2.77:9477']);
  assert.equal(other.code, 2);
  assert.match(other.stderr, /no such address on this host/);
});

test("serve under a real UDP flood (~100k packets/s) for 100 s, scraped every second: RSS flat once /report's window is full and the heap has settled (bench:soak, short)", async (t) => {
  if (skipUnlessKernel(t) || needsTwoCpus(t)) return;
  const missing = udpLoadMissing();
  if (skipIf(t, missing)) return;
  // the 20 s window is full after 25 s and V8's old generation settles by ~60 s
  // (measured: +8 MB between 30 and 60 s, flat after), in one CI run of eight
  // by ~75 s (71 MB at 60 s, 76 MB at 75 s and flat at 76 to the end, the same
  // peak as the others); growth is measured over the last 25 s. The peak is
  // printed against its target, not asserted: a figure for bench:soak.
  const r = await soak(100, { kind: 'udp', pps: 100_000 }, 75, ['--report-window', '20s']);
  process.stderr.write(soakSummary(r) + '\n');
  assert.ok(r.scrapes >= 60, `only ${r.scrapes} scrapes answered`);
  // the load is real: tens of thousands of packets a second reached the receiving veth, and serve
  // counted a softirq run for most of them (it times packets only in late NET_RX runs)
  assert.ok(r.packetsPerSec >= 20_000, `the veth received ${r.packetsPerSec.toFixed(0)} packets/s`);
  assert.ok(r.eventsPerSec >= 0.5 * r.packetsPerSec, `${r.eventsPerSec.toFixed(0)} events/s for ${r.packetsPerSec.toFixed(0)} packets/s`);
  assert.ok(r.growthMb <= 5, `RSS grew ${r.growthMb.toFixed(1)} MB in the last 25 s: ${r.samples.map((x) => x.rssMb.toFixed(0)).join(' ')}`);
});

test('serve mode: short runs counted in the kernel add up to what streaming every run sees', async (t) => {
  if (skipUnlessKernel(t) || needsTwoCpus(t)) return;
  // both at once, so they see the very same softirqs
  const stream = LiveTrace.start({});
  const inKernel = LiveTrace.start({ kernelHistsBelowNs: 1e6, streamIcmp: false, ringBytes: 1 << 20 });
  const stall = new LabStall({ cpu: 1, stallMs: 15, periodMs: 200 });
  try {
    assert.match(inKernel.session.notes.join('\n'), /runs under 1 ms are counted in the kernel/);
    stream.rotate();
    inKernel.rotate();
    const streamedBefore = [stream.session.streamedEvents(), inKernel.session.streamedEvents()];
    const flood = spawnSync('ping', ['-f', '-q', '-c', '3000', '127.0.0.1'], { stdio: 'ignore', timeout: 60_000 });
    assert.equal(flood.status, 0, 'ping -f');
    await new Promise((r) => setTimeout(r, 1200));
    const a = stream.rotate();
    const b = inKernel.rotate();
    const streamed = [stream.session.streamedEvents() - streamedBefore[0], inKernel.session.streamedEvents() - streamedBefore[1]];
    // streamed runs and the kernel's counts together, as every view reads them (diagnose/summary.ts)
    const runs = (agg: typeof a, vec: number, cpu?: number) =>
      summarize(agg, { probes: stream.session.probes })
        .histograms.filter((s) => s.probe === 'softirq' && s.key === SOFTIRQ_NAMES[vec] && (cpu === undefined || s.cpu === cpu))
        .reduce((h, s) => h.merge(s.histogram), new Histogram());
    assert.ok(b.kernel.entries('softirq').length > 0, "serve mode kept the kernel's counts as they came");
    const netRx = [runs(a, NET_RX_SOFTIRQ).count, runs(b, NET_RX_SOFTIRQ).count];
    process.stderr.write(`NET_RX runs: streaming ${netRx[0]}, in-kernel ${netRx[1]}; events through the ring: ${streamed[0]} vs ${streamed[1]}\n`);
    assert.ok(netRx[0] >= 1000, `only ${netRx[0]} NET_RX runs under a flood`);
    assert.ok(Math.abs(netRx[1] - netRx[0]) <= 0.05 * netRx[0] + 50, `NET_RX runs ${netRx[1]} in-kernel vs ${netRx[0]} streamed`);
    assert.ok(streamed[1] < 0.25 * streamed[0], `serve mode streamed ${streamed[1]} events, streaming mode ${streamed[0]}`);
    // the same NET_RX run-time distribution, within the kernel buckets' resolution (1/4 of a power of two)
    for (const q of [0.5, 0.9]) {
      const [x, y] = [runs(a, NET_RX_SOFTIRQ).quantile(q), runs(b, NET_RX_SOFTIRQ).quantile(q)];
      assert.ok(Math.abs(y - x) <= 0.3 * x + 500, `NET_RX run p${q * 100}: in-kernel ${y} ns vs streamed ${x} ns`);
    }
    // the stall still streams whole: a 15 ms HRTIMER softirq on CPU 1, and a stall record
    const hrMax = runs(b, HRTIMER_SOFTIRQ, 1).max;
    assert.ok(hrMax >= 14e6, `HRTIMER softirq max on CPU 1 in serve mode: ${hrMax} ns`);
    assert.ok(
      b.stalls().some((s) => s.cpu === 1 && s.durationNs >= 14e6),
      'a stall on CPU 1 kept',
    );
  } finally {
    stall.stop();
    inKernel.stop();
    stream.stop();
  }
});

/** Two clock reads' slack between serve's wait and streaming's, and how late a hop must start to be set aside. */
const HOP_SLACK_NS = 0.2e6;

test('serve times packets only in NET_RX runs that started late, with no arrival hook: the same slow packets as streaming, from the raise (an upper bound)', async (t) => {
  if (skipUnlessKernel(t) || needsTwoCpus(t)) return;
  const pair = new NetnsPair();
  t.after(() => pair.destroy());
  // both at once in namespace b's view of the kernel (tracing is not per namespace)
  // the lab first: its hooks run before the tracers' on the same tracepoint, so a pause it
  // makes (JITTERSCOPE_TEST_PAUSES) is timed whole, as a host's would be
  const lab = await startLab(pair);
  t.after(() => lab.kill());
  // streaming keeps every NET_RX run whose raise it saw as a receive stall (1 us late): each
  // request's hop from CPU 0 to CPU 1 is then known, from its arrival to the raise on CPU 1 (below)
  const stream = LiveTrace.start({ slowPacketNs: 1e3 });
  const serve = LiveTrace.start({ kernelHistsBelowNs: 1e6, streamIcmp: false, lateRunPacketsOnly: true, ringBytes: 1 << 20 });
  t.after(() => {
    serve.stop();
    stream.stop();
  });
  assert.match(serve.session.probes.packet_wait.mode ?? '', /only in NET_RX runs that started --packet-ms late \(serve\)/);
  assert.equal(serve.session.probes.icmp_rcv.active, false);
  assert.ok(serve.session.notes.some((n) => /no per-packet arrival hook/.test(n)));
  assert.equal(serve.session.programStats().find((h) => h.hook === 'rx_arrive')?.runCount, 0, 'serve loads no arrival hook');
  await timingTest(t, async ({ scale }) => {
    stream.rotate();
    serve.rotate();
    // pinned to CPU 0: a sender on the stalled CPU would only send between stalls
    const ping = spawnSync(
      'ip',
      pair.exec(pair.a, ['taskset', '-c', '0', 'ping', '-q', '-n', '-e', '4301', '-c', String(300 * scale), '-i', '0.013', pair.addrB]),
      { encoding: 'utf8' },
    );
    assert.equal(ping.status, 0, ping.stderr);
    await new Promise((r) => setTimeout(r, 300));
    const streamed = stream.rotate();
    const a = streamed.slowPackets().filter((p) => p.id === 4301 && p.type === 8);
    const b = serve
      .rotate()
      .slowPackets()
      .filter((p) => p.id === 4301 && p.type === 8);
    process.stderr.write(`slow echo requests: streaming ${a.length}, serve ${b.length}; serve's drops ${JSON.stringify(serve.drops())}\n`);
    assert.ok(
      b.every((p) => p.path === 'late-run' && p.cpu === 1),
      'serve lists packets of late runs, timed from the raise',
    );
    assert.ok(a.every((p) => p.path === 'backlog'));
    // every request streaming saw wait 2 ms or more was processed in a late run: serve has it,
    // and its wait from the raise is at least the exact one (minus the slack of two clock reads).
    // RPS steers each request from CPU 0, where it arrives, to CPU 1: before CPU 1's raise it
    // waits for CPU 0's NET_RX run to send the IPI, and for CPU 1 to take it (a vCPU the host
    // has stopped takes it late). serve does not time that hop (it has no arrival hook), so a
    // request whose run on CPU 1 was raised 0.2 ms or more after it arrived is set aside, and said.
    const runs = streamed.receiveStalls();
    const runOf = (p: (typeof a)[number]) => {
      const at = p.startNs + p.waitNs!;
      return runs.find((r) => r.cpu === p.cpu && r.startNs <= at && at <= r.startNs + r.runNs);
    };
    const hopMs = (p: (typeof a)[number]) => {
      const run = runOf(p);
      return run ? (run.raiseNs - p.startNs) / 1e6 : null;
    };
    const hopLate = (p: (typeof a)[number]) => p.arrivalCpu !== p.cpu && (hopMs(p) ?? 0) >= HOP_SLACK_NS / 1e6;
    const long = a.filter((p) => (p.waitNs ?? 0) >= 2e6);
    const lateHop = long.filter(hopLate);
    if (lateHop.length)
      process.stderr.write(
        `${lateHop.length} of ${long.length} requests set aside: their run on CPU 1 was raised late after they arrived on CPU ${lateHop[0].arrivalCpu} (${lateHop.map((p) => `${hopMs(p)!.toFixed(2)} ms`).join(', ')})\n`,
      );
    // a run whose raise the hook did not see (its wait unknown) cannot be timed from the raise: serve
    // misses its packets. Streaming's hook is serve's own: such a request is set aside and said,
    // at most one in ten of them (about 1 in 10,000 runs here: raised where the softirq_raise hook did not run, docs/design.md)
    const unseenRuns = (streamed.softirq[1]?.[3]?.count ?? 0) - (streamed.softirqWait[1]?.[3]?.count ?? 0);
    const raiseUnseen = (p: (typeof a)[number]) => !hopLate(p) && unseenRuns > 0 && runOf(p) === undefined;
    const unseen = long.filter(raiseUnseen);
    if (unseen.length)
      process.stderr.write(
        `${unseen.length} of ${long.length} requests set aside: their run on CPU 1 had no raise seen (${unseenRuns} such NET_RX runs there): seq ${unseen.map((p) => p.seq).join(', ')}\n`,
      );
    assert.ok(
      unseen.length <= Math.max(1, Math.floor(long.length / 10)),
      `${unseen.length} of ${long.length} requests waited >= 2 ms in NET_RX runs whose raise was not seen`,
    );
    const servedAs = (p: (typeof a)[number]) => b.find((x) => x.seq === p.seq);
    const inServe = (p: (typeof a)[number]) => {
      const q = servedAs(p);
      return q !== undefined && q.waitNs! >= p.waitNs! - HOP_SLACK_NS;
    };
    const pauses = streamed.stalls().filter((x) => x.kind === 'pause');
    return [
      judgeShare(
        {
          what: "requests that waited >= 2 ms, in serve's list with a wait no shorter",
          samples: long.filter((p) => !hopLate(p) && !raiseUnseen(p)),
          window: packetWindow,
          ok: inServe,
          minShare: 1,
          minSamples: 5,
          noise: NOISE.serveLateRun,
          show: (p) => {
            const q = servedAs(p);
            // the NET_RX run that processed it, as streaming's own raise hook timed it (the same logic as serve's)
            const run = runOf(p);
            const runText = run
              ? `its run: raised ${hopMs(p)!.toFixed(2)} ms after arrival, waited ${(run.waitNs / 1e6).toFixed(2)} ms${run.deferred ? ', in ksoftirqd' : ''}`
              : 'its run: no raise seen (wait unknown)';
            const missed = [stream, serve].map((tr) =>
              tr.session
                .programStats()
                .filter((h) => h.recursionMisses)
                .map((h) => `${h.hook} ${h.recursionMisses}`),
            );
            const unknownRuns = [0, 1].map((cpu) => (streamed.softirq[cpu]?.[3]?.count ?? 0) - (streamed.softirqWait[cpu]?.[3]?.count ?? 0));
            return `seq ${p.seq} (CPU ${p.arrivalCpu} -> ${p.cpu}) [NET_RX runs with no raise seen, CPU 0 and 1: ${unknownRuns}; programs' recursion misses: ${JSON.stringify(missed)}] waited ${(p.waitNs! / 1e6).toFixed(2)} ms, serve: ${q ? `${(q.waitNs! / 1e6).toFixed(2)} ms` : 'not listed'}; ${runText}`;
          },
        },
        pauses,
      ),
    ];
  });
  await lab.stop();
});
