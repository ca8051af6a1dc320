// Kernel: the application's share. A server pinned to CPU 1, where the lab
// stall runs (bpf_timer_cb, 11 ms every 200 ms); a client in another namespace
// on CPU 0, over a veth with RPS off, so every packet is processed on CPU 0
// and none waits. The client still sees slow requests: the server, woken by
// receive processing on CPU 0, waits for CPU 1 while the callback holds it
// (a slow wake-up), or loses its CPU to it while it works (a stolen run).
// `record` must name bpf_timer_cb and the server's task for those requests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import {
  NetnsPair,
  readJson,
  readReport,
  ROOT,
  skipIf,
  skipUnlessKernel,
  startCli,
  tmpFile,
  waitFor,
  needsTwoCpus,
  RUNQSLOWER,
  parseRunqslower,
} from '../helpers';
import { Judgement, judgeShare, pausesOf, SampleWindow, timingTest } from '../excuse';
import { NOISE } from '../noise';

const FIXTURE = path.join(ROOT, 'test', 'fixtures', 'echo.js');
const PORT = 7799;

interface Scenario {
  proto: 'tcp' | 'udp';
  v6: boolean;
  /** The server's CPU work per request (ms). */
  busyMs: number;
  stall: boolean;
}

async function startServer(net: NetnsPair, s: Scenario, addr: string): Promise<ChildProcess> {
  const mode = s.proto === 'tcp' ? 'server' : 'udp-server';
  const server = spawn('ip', net.exec(net.b, ['taskset', '-c', '1', process.execPath, FIXTURE, mode, addr, String(PORT), String(s.busyMs)]), {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let said = '';
  server.stdout!.on('data', (d) => (said += d));
  assert.ok(await waitFor(() => said.includes('listening'), 5000), 'the echo server did not start');
  return server;
}

/** The lab stall on CPU 1 with no RPS: the packets stay on CPU 0. */
async function startStall() {
  const lab = startCli(['lab', '--cpu', '1', '--stall-ms', '11', '--period-ms', '200'], /lab: stalling/);
  assert.ok(await lab.ready, 'lab did not start');
  return lab;
}

/**
 * `record` in namespace b while the client makes `count` requests 13 ms apart
 * from CPU 0 (13: not a divisor of the 200 ms period); with `peerPid`, runqslower
 * watches that process's wake-ups of 3 ms or more meanwhile.
 */
async function run(net: NetnsPair, s: Scenario, addr: string, count: number, peerPid?: number) {
  const out = tmpFile('wakeup.json');
  const clientOut = tmpFile('client.json');
  const rec = startCli(['record', '-d', '60s', '-o', out], /tracing for/, { prefix: ['ip', ...net.exec(net.b, [])] });
  assert.ok(await rec.ready, 'record never said it was tracing');
  let peer: ReturnType<typeof spawn> | undefined;
  let peerOut = '';
  if (peerPid !== undefined && RUNQSLOWER) {
    peer = spawn('stdbuf', ['-oL', RUNQSLOWER, '-p', String(peerPid), '3000'], { stdio: ['ignore', 'pipe', 'pipe'] });
    peer.stdout!.on('data', (d) => (peerOut += d));
    assert.ok(await waitFor(() => peerOut.includes('Tracing'), 10_000), `runqslower did not start: ${peerOut}`);
  }
  const mode = s.proto === 'tcp' ? 'client' : 'udp-client';
  const c = spawnSync('ip', net.exec(net.a, ['taskset', '-c', '0', process.execPath, FIXTURE, mode, addr, String(PORT), String(count), '13', clientOut]), {
    encoding: 'utf8',
  });
  if (peer) {
    const closed = new Promise((r) => peer!.on('close', r));
    peer.kill('SIGINT');
    await closed;
  }
  rec.child.kill('SIGINT');
  const res = await rec.done;
  assert.equal(c.status, 0, c.stderr);
  assert.equal(res.code, 0, res.stderr);
  const client = readJson(clientOut) as { localPort: number; rows: { sentNs: number; rttMs: number | null }[] };
  return { r: readReport(out), client, peer: peer ? parseRunqslower(peerOut) : null };
}

const overlaps = (a: { from: number; to: number }, b: { startNs: number; durationNs: number }) => b.startNs < a.to && b.startNs + b.durationNs > a.from;
const namesStall = (x: any) => x.attribution?.culprit === 'bpf_timer_cb' && x.attribution.cpu === 1;

/**
 * The client's slow requests (an RTT of at least 3 ms more than the server's
 * work) that a stall covered for half their time: 90 % of the clean ones fall in the window of
 * a slow wake-up or stolen run of the server that names bpf_timer_cb on CPU 1.
 * A request slow for another reason (another task on CPU 1, a host pause) is
 * not the stall's; no wake-up of the server the stall did not overlap may
 * name it.
 */
function judgeRequests(r: any, client: { rows: { sentNs: number; rttMs: number | null }[] }, serverPid: number, s: Scenario): Judgement {
  const mine = (r.wakeups?.slow ?? []).filter((x: any) => x.pid === serverPid);
  const stalls = r.stalls.rows.filter((x: any) => x.culprit === 'bpf_timer_cb' && x.cpu === 1);
  assert.equal(
    mine.filter((x: any) => namesStall(x) && !stalls.some((st: any) => overlaps({ from: x.startNs, to: x.startNs + x.durationNs }, st))).length,
    0,
    'a wake-up no stall overlapped is not blamed on it',
  );
  // a stall that began in a request's last millisecond did not make it slow: it must cover half its time
  const covered = (w: { from: number; to: number }, st: any) => Math.min(w.to, st.startNs + st.durationNs) - Math.max(w.from, st.startNs);
  const slow = client.rows.filter(
    (q) =>
      q.rttMs !== null &&
      q.rttMs >= s.busyMs + 3 &&
      stalls.some((st: any) => covered({ from: q.sentNs, to: q.sentNs + q.rttMs! * 1e6 }, st) >= 0.5 * q.rttMs! * 1e6),
  );
  const window = (q: { sentNs: number; rttMs: number | null }): SampleWindow => ({ cpus: [0, 1], fromNs: q.sentNs, toNs: q.sentNs + q.rttMs! * 1e6 });
  const explained = (q: { sentNs: number; rttMs: number | null }) =>
    mine.some((x: any) => namesStall(x) && overlaps({ from: q.sentNs, to: q.sentNs + q.rttMs! * 1e6 }, x));
  return judgeShare(
    {
      what: `slow ${s.proto}${s.v6 ? '/IPv6' : ''} requests a stall covered for half their time, in a slow wake-up or stolen run of the server that names bpf_timer_cb on CPU 1`,
      samples: slow,
      window,
      ok: explained,
      minShare: 0.9,
      minSamples: 5,
      noise: NOISE.wakeup,
      // a miss shows the server's slow wake-ups in its window and what they named, and where the stall lay
      show: (q) => {
        const w = { from: q.sentNs, to: q.sentNs + q.rttMs! * 1e6 };
        const wakes = mine
          .filter((x: any) => overlaps(w, x))
          .map((x: any) => `${x.kind} ${(x.durationNs / 1e6).toFixed(1)} ms by ${x.attribution?.culprit ?? 'nothing named'}`);
        const runs = stalls
          .filter((st: any) => overlaps(w, st))
          .map((st: any) => `stall ${(st.durationNs / 1e6).toFixed(1)} ms from +${((st.startNs - q.sentNs) / 1e6).toFixed(1)} ms`);
        return `${q.rttMs!.toFixed(1)} ms at ${q.sentNs} (server's slow wake-ups: ${wakes.join(', ') || 'none'}; ${runs.join(', ')})`;
      },
    },
    pausesOf(r),
  );
}

/**
 * Each slow wake-up and stolen run of the server carries its socket (this
 * kernel has sock:sk_data_ready): the server's address, port and protocol; the
 * client as the peer over TCP (one connection), none over UDP (the socket is
 * not connected).
 * Not a timing judgement: which socket woke the server is known exactly.
 */
function checkFlows(r: any, serverPid: number, s: Scenario, client: string, server: string) {
  assert.ok(r.meta.probes.wakeup.hooks.includes('sock:sk_data_ready'), `flows by sock:sk_data_ready: ${JSON.stringify(r.meta.probes.wakeup)}`);
  const mine = (r.wakeups?.slow ?? []).filter((x: any) => x.pid === serverPid);
  const withFlow = mine.filter((x: any) => x.flow);
  assert.ok(withFlow.length >= 0.9 * mine.length, `${withFlow.length} of the server's ${mine.length} slow wake-ups and stolen runs carry their socket`);
  // over TCP the listener's one accept reads as a socket with no peer: one wake-up, which can
  // be both a slow wait and, once it runs, a stolen run (two rows, each with that socket)
  const accepts = s.proto === 'tcp' ? withFlow.filter((x: any) => x.flow.saddr === null) : [];
  for (const kind of ['wait', 'stolen'])
    assert.ok(
      accepts.filter((x: any) => x.kind === kind).length <= 1,
      `one connection, one accept: ${JSON.stringify(accepts.map((x: any) => ({ kind: x.kind, startNs: x.startNs, durationNs: x.durationNs })))}`,
    );
  for (const x of withFlow.filter((y: any) => !accepts.includes(y)))
    assert.deepEqual(
      { ...x.flow, sport: 0 }, // the client's port is the kernel's pick
      { proto: s.proto, saddr: s.proto === 'tcp' ? client : null, sport: 0, daddr: server, dport: PORT },
      `the server's socket: ${JSON.stringify(x.flow)}`,
    );
}

async function scenario(t: any, s: Scenario, check: (r: any, serverPid: number) => void = () => undefined) {
  const net = new NetnsPair();
  t.after(() => net.destroy());
  const addr = s.v6 ? net.addr6B : net.addrB;
  const server = await startServer(net, s, addr);
  t.after(() => server.kill());
  const lab = await startStall();
  t.after(() => lab.child.kill('SIGKILL'));
  await timingTest(t, async ({ scale }) => {
    const { r, client } = await run(net, s, addr, 700 * scale);
    assert.ok(client.rows.filter((q) => q.rttMs !== null).length >= 0.99 * 700 * scale, 'the requests were answered');
    // the requests were processed on CPU 0 (RPS off, the client's CPU): none waited on CPU 1. (A reply is
    // processed on the server's CPU 1 right after it is sent; one the stall's ksoftirqd held there is rare and
    // real, and the request it answers is slow for a packet, not only for its wake-up.)
    const onCpu1 = (r.packets.slow as any[]).filter((p) => p.dport === PORT && p.cpu === 1);
    assert.deepEqual(onCpu1, [], 'no slow request packet on CPU 1');
    assert.equal(r.meta.probes.wakeup.active, true, r.meta.probes.wakeup.reason);
    checkFlows(r, server.pid!, s, s.v6 ? net.addr6A : net.addrA, addr);
    const j = judgeRequests(r, client, server.pid!, s);
    if (j.verdict === 'pass') check(r, server.pid!);
    return [j];
  });
  lab.child.kill('SIGINT');
  assert.equal((await lab.done).code, 0);
}

test("wake-ups (a): a TCP server on the stall's CPU, its packets processed on the other: its slow requests are its slow wake-ups, blamed on bpf_timer_cb; the verdict names it", async (t) => {
  if (skipUnlessKernel(t) || needsTwoCpus(t)) return;
  await scenario(t, { proto: 'tcp', v6: false, busyMs: 0, stall: true }, (r, pid) => {
    const v = r.verdict;
    assert.equal(v.culprit?.culprit, 'bpf_timer_cb', v.text);
    assert.equal(v.culprit.cpu, 1);
    assert.equal(v.culprit.basis, 'wakeups', v.text);
    assert.match(
      v.text,
      new RegExp(`^Verdict: bpf_timer_cb on CPU 1 \\(hrtimer\\) held [^\\n]*node\\[${pid}\\][^\\n]* times after receive processing woke them`),
    );
    assert.match(v.text, /their packets were not slow/);
    // NetnsPair's addresses: the client 198.18.0.1, the server 198.18.0.2
    assert.match(v.text, new RegExp(`\\nTheir sockets: tcp 198\\.18\\.0\\.1 -> 198\\.18\\.0\\.2:${PORT} \\(\\d+\\)`), v.text);
  });
});

test('wake-ups (a) control: without the stall, no wake-up is blamed on bpf_timer_cb and the verdict does not name it', async (t) => {
  if (skipUnlessKernel(t) || needsTwoCpus(t)) return;
  const net = new NetnsPair();
  t.after(() => net.destroy());
  const s: Scenario = { proto: 'tcp', v6: false, busyMs: 0, stall: false };
  const server = await startServer(net, s, net.addrB);
  t.after(() => server.kill());
  const { r } = await run(net, s, net.addrB, 300);
  assert.equal((r.wakeups?.slow ?? []).filter(namesStall).length, 0, 'nothing named bpf_timer_cb');
  assert.notEqual(r.verdict.culprit?.culprit, 'bpf_timer_cb', r.verdict.text);
});

test('wake-ups (b): the server works 6 ms a request and the stall lands in that work: the stolen time is attributed', async (t) => {
  if (skipUnlessKernel(t) || needsTwoCpus(t)) return;
  await scenario(t, { proto: 'tcp', v6: false, busyMs: 6, stall: true }, (r, pid) => {
    const stolen = (r.wakeups.slow as any[]).filter((x) => x.kind === 'stolen' && x.pid === pid && namesStall(x));
    assert.ok(stolen.length >= 3, `stolen runs of the server blamed on bpf_timer_cb: ${stolen.length}`);
    assert.ok(
      stolen.every((x) => x.stolenNs >= 1e6 && x.stolenNs <= x.durationNs),
      'time taken within the run',
    );
  });
});

test('wake-ups (c): UDP over IPv4, and TCP over IPv6, the same answer', async (t) => {
  if (skipUnlessKernel(t) || needsTwoCpus(t)) return;
  await t.test('UDP', (t2) => scenario(t2, { proto: 'udp', v6: false, busyMs: 0, stall: true }));
  await t.test('TCP over IPv6', (t2) => scenario(t2, { proto: 'tcp', v6: true, busyMs: 0, stall: true }));
});

test('wake-ups (e): a peer, runqslower, sees the same slow wake-ups of the server within 0.3 ms', async (t) => {
  if (skipUnlessKernel(t) || needsTwoCpus(t) || skipIf(t, RUNQSLOWER ? null : 'runqslower is missing: apt-get install libbpf-tools (npm test installs it)'))
    return;
  const net = new NetnsPair();
  t.after(() => net.destroy());
  const s: Scenario = { proto: 'tcp', v6: false, busyMs: 0, stall: true };
  const server = await startServer(net, s, net.addrB);
  t.after(() => server.kill());
  const lab = await startStall();
  t.after(() => lab.child.kill('SIGKILL'));
  await timingTest(t, async ({ scale }) => {
    const { r, peer } = await run(net, s, net.addrB, 700 * scale, server.pid!);
    const offset = r.meta.clock.realtimeOffsetNs;
    // ours, by the wall-clock second runqslower prints (local time, as it prints it)
    const ours = (r.wakeups?.slow ?? []).filter((x: any) => x.kind === 'wait' && x.pid === server.pid);
    const second = (ns: number) => new Date((ns + offset) / 1e6).toTimeString().slice(0, 8);
    const near = (a: string, b: string) => Math.abs(Date.parse(`1970-01-01T${a}Z`) - Date.parse(`1970-01-01T${b}Z`)) <= 1000;
    const seen = (p: { time: string; latUs: number }) =>
      ours.some((x: any) => Math.abs(x.durationNs / 1e3 - p.latUs) <= 300 && near(second(x.startNs), p.time));
    const pauses = pausesOf(r);
    // runqslower's time of day (local, whole seconds) on the trace's day, on the monotonic clock
    const monoAt = (time: string) => {
      const d = new Date((r.meta.clock.startNs + offset) / 1e6);
      const [h, m, sec] = time.split(':').map(Number);
      d.setHours(h, m, sec, 0);
      const at = d.getTime() * 1e6 - offset;
      return at < r.meta.clock.startNs - 3600e9 ? at + 86400e9 : at; // past midnight
    };
    const inSecond = (p: { time: string }): SampleWindow => {
      // the second it printed (when the wait ended) and the one before, on the server's CPU: a pause
      // anywhere in them excuses the sample, whether or not record timed it (the window is
      // runqslower's own, not that of a wake-up of ours nearby)
      const at = monoAt(p.time);
      return { cpus: [1], fromNs: at - 1e9, toNs: at + 1e9 };
    };
    assert.ok(peer, 'runqslower ran');
    return [
      judgeShare(
        {
          what: "runqslower's wake-ups of the server (>= 3 ms) that record timed within 0.3 ms",
          samples: peer!,
          window: inSecond,
          ok: seen,
          minShare: 0.9,
          minSamples: 5,
          noise: NOISE.peer,
          show: (p) => `${p.time} ${p.latUs} us`,
        },
        pauses,
      ),
    ];
  });
  lab.child.kill('SIGINT');
  await lab.done;
});
