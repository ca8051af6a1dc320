// Kernel: a real server, Debian's redis-server, with its default `hz 10`: it
// wakes every 100 ms for its own timers. Pinned to CPU 1, where the lab stall
// runs (bpf_timer_cb, 40 ms every 200 ms); a client in another namespace on
// CPU 0 sends PING, SET and GET over one connection, 9 ms after each reply,
// over a veth with RPS off (every packet processed on CPU 0). When redis's
// timer fires during a stall, redis is already runnable when the request's
// data arrives: no wake-up happens inside NET_RX, and the request still waits
// behind the stall. `record` must time that wait from the data's readiness
// (kind "ready"), name bpf_timer_cb, and agree with runqslower (the peer that
// prints every slow run-queue wait of the server).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
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
import { judgeShare, pausesOf, SampleWindow, timingTest } from '../excuse';
import type { Report } from '../../src/report/types';
import type { WakeupRow } from '../../src/diagnose/wakeup';
import { NOISE } from '../noise';

const CLIENT = path.join(ROOT, 'test', 'fixtures', 'resp-client.py');
const PORT = 6379;
const REDIS = ['/usr/bin/redis-server', '/usr/sbin/redis-server'].find((f) => fs.existsSync(f)) ?? null;
/** Requests per attempt: 9 ms apart plus their round trips, about 22 s and 100 stalls. */
const REQUESTS = 2200;

type ClientRow = { sentNs: number; rttMs: number | null };

async function startRedis(net: NetnsPair): Promise<ChildProcess> {
  // default hz (10): redis's own timer is what makes it already awake when a request arrives
  const args = [
    '--port',
    String(PORT),
    '--bind',
    net.addrB,
    '--save',
    '',
    '--appendonly',
    'no',
    '--protected-mode',
    'no',
    '--daemonize',
    'no',
    '--logfile',
    '',
  ];
  const server = spawn('ip', net.exec(net.b, ['taskset', '-c', '1', REDIS!, ...args]), { stdio: ['ignore', 'pipe', 'pipe'] });
  let said = '';
  server.stdout!.on('data', (d) => (said += d));
  assert.ok(await waitFor(() => said.includes('Ready to accept connections'), 10_000), `redis-server did not start: ${said.slice(-400)}`);
  return server;
}

async function run(net: NetnsPair, pid: number, count: number) {
  const out = tmpFile('redis.json');
  const clientOut = tmpFile('redis-client.json');
  const rec = startCli(['record', '-d', '120s', '-o', out], /tracing for/, { prefix: ['ip', ...net.exec(net.b, [])] });
  assert.ok(await rec.ready, 'record never said it was tracing');
  const peer = spawn('stdbuf', ['-oL', RUNQSLOWER!, '-p', String(pid), '3000'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let peerOut = '';
  peer.stdout!.on('data', (d) => (peerOut += d));
  assert.ok(await waitFor(() => peerOut.includes('Tracing'), 10_000), `runqslower did not start: ${peerOut}`);
  const c = spawnSync('ip', net.exec(net.a, ['taskset', '-c', '0', 'python3', CLIENT, net.addrB, String(PORT), String(count), '9', clientOut]), {
    encoding: 'utf8',
  });
  const closed = new Promise((r) => peer.on('close', r));
  peer.kill('SIGINT');
  await closed;
  rec.child.kill('SIGINT');
  const res = await rec.done;
  assert.equal(c.status, 0, c.stderr);
  assert.equal(res.code, 0, res.stderr);
  const client = readJson(clientOut) as { rows: ClientRow[] };
  return { r: readReport(out) as Report, client: client.rows, peer: parseRunqslower(peerOut) };
}

const namesStall = (x: WakeupRow) => x.attribution?.culprit === 'bpf_timer_cb' && x.attribution.cpu === 1;
const overlaps = (from: number, to: number, s: { startNs: number; durationNs: number }) => s.startNs < to && s.startNs + s.durationNs > from;

test("redis (default hz): requests that wait for a server already awake are timed from their data's readiness, named after bpf_timer_cb, and runqslower's slow waits are in the report", async (t) => {
  if (
    skipUnlessKernel(t) ||
    needsTwoCpus(t) ||
    skipIf(t, REDIS ? null : 'redis-server is missing: apt-get install redis-server (npm test installs it)') ||
    skipIf(t, RUNQSLOWER ? null : 'runqslower is missing: apt-get install libbpf-tools (npm test installs it)')
  )
    return;
  const net = new NetnsPair();
  t.after(() => net.destroy());
  const server = await startRedis(net);
  t.after(() => server.kill('SIGKILL'));
  const lab = startCli(['lab', '--cpu', '1', '--stall-ms', '40', '--period-ms', '200'], /lab: stalling/);
  assert.ok(await lab.ready, 'lab did not start');
  t.after(() => lab.child.kill('SIGKILL'));
  await timingTest(t, async ({ scale }) => {
    const { r, client, peer } = await run(net, server.pid!, REQUESTS * scale);
    assert.ok(client.filter((q) => q.rttMs !== null).length >= 0.99 * client.length, 'the requests were answered');
    assert.ok(r.meta.probes.wakeup.hooks.includes('sock:sk_data_ready'), `data-ready by sock:sk_data_ready: ${JSON.stringify(r.meta.probes.wakeup)}`);
    const mine = (r.wakeups?.slow ?? []).filter((x) => x.pid === server.pid);
    const stalls = r.stalls.rows.filter((x) => x.culprit === 'bpf_timer_cb' && x.cpu === 1);
    // plain checks, no pause excuses them: nothing the stall did not overlap is blamed on it, and no
    // culprit is charged more of a wait than the wait
    assert.deepEqual(
      mine.filter((x) => namesStall(x) && !stalls.some((s) => overlaps(x.startNs, x.startNs + x.durationNs, s))).map((x) => x.startNs),
      [],
      'a wait no stall overlapped is not blamed on it',
    );
    for (const x of mine)
      if (x.attribution && x.kind !== 'stolen')
        assert.ok(x.attribution.overlapMs <= x.durationNs / 1e6 + 1e-6, `charged more than it covered: ${JSON.stringify(x)}`);
    const ready = mine.filter((x) => x.kind === 'ready');
    // how long the server had been runnable is the scheduler's figure (runqslower's); it is usually longer than
    // the data's wait (its timer woke it first), and shorter where the scheduler queued it again meanwhile
    process.stderr.write(
      `redis: ${ready.length} waits already awake (${ready.filter((x) => (x.queuedNs ?? 0) < x.durationNs).length} of them runnable for less than the data waited), ${mine.length - ready.length} others\n`,
    );
    // (1) the client's slow requests that a stall covered for half their time are explained
    const slow = client.filter(
      (q) =>
        q.rttMs !== null &&
        q.rttMs >= 3 &&
        stalls.some((s) => Math.min(q.sentNs + q.rttMs! * 1e6, s.startNs + s.durationNs) - Math.max(q.sentNs, s.startNs) >= 0.5 * q.rttMs! * 1e6),
    );
    const requests = judgeShare(
      {
        what: "redis's slow requests a stall covered for half their time, in a wait (woken or already awake) or stolen run of the server that names bpf_timer_cb on CPU 1",
        samples: slow,
        window: (q): SampleWindow => ({ cpus: [0, 1], fromNs: q.sentNs, toNs: q.sentNs + q.rttMs! * 1e6 }),
        ok: (q) => mine.some((x) => namesStall(x) && overlaps(q.sentNs, q.sentNs + q.rttMs! * 1e6, x)),
        minShare: 0.9,
        minSamples: 20,
        noise: NOISE.wakeup,
        show: (q) => {
          const seen = mine.filter((x) => overlaps(q.sentNs, q.sentNs + q.rttMs! * 1e6, x));
          return `${q.rttMs!.toFixed(1)} ms at ${q.sentNs} (the server's: ${seen.map((x) => `${x.kind} ${(x.durationNs / 1e6).toFixed(1)} ms by ${x.attribution?.culprit ?? 'nothing'}`).join(', ') || 'none'})`;
        },
      },
      pausesOf(r),
    );

    // (2) runqslower's slow waits of the server while the client ran, within 0.3 ms: a woken wait by its
    // duration; a wait already awake by how long the server had been runnable, or (its timer woke it as its
    // data arrived, or the scheduler's figure is not known) by the data's wait
    const offset = r.meta.clock.realtimeOffsetNs;
    const second = (ns: number) => new Date((ns + offset) / 1e6).toTimeString().slice(0, 8);
    const at = (hms: string) => Date.parse(`1970-01-01T${hms}Z`);
    const from = at(second(client[0].sentNs)) + 1000;
    const last = client[client.length - 1];
    const to = at(second(last.sentNs)) - 1000;
    const during = peer.filter((p) => at(p.time) >= from && at(p.time) <= to);
    const ours = mine.filter((x) => x.kind !== 'stolen');
    const monoAt = (hms: string) => {
      const d = new Date((r.meta.clock.startNs + offset) / 1e6);
      const [h, m, s] = hms.split(':').map(Number);
      d.setHours(h, m, s, 0);
      return d.getTime() * 1e6 - offset;
    };
    const peerJudged = judgeShare(
      {
        what: "runqslower's run-queue waits of the server (>= 3 ms) while the client ran, that record timed within 0.3 ms",
        samples: during,
        // the second it printed and the one before, on the server's CPU
        window: (p): SampleWindow => ({ cpus: [1], fromNs: monoAt(p.time) - 1e9, toNs: monoAt(p.time) + 1e9 }),
        ok: (p) =>
          ours.some(
            (x) =>
              [x.durationNs, x.queuedNs ?? 0].some((ns) => Math.abs(ns / 1e3 - p.latUs) <= 300) &&
              Math.abs(at(second(x.startNs + x.durationNs)) - at(p.time)) <= 1000,
          ),
        minShare: 0.9,
        minSamples: 20,
        noise: NOISE.peer,
        show: (p) => `${p.time} ${p.latUs} us`,
      },
      pausesOf(r),
    );
    if (requests.verdict === 'pass' && peerJudged.verdict === 'pass') {
      // the new path was taken: redis's timer made it already awake in some of the stalls
      assert.ok(ready.filter(namesStall).length >= 3, `waits of the server already awake, named after the stall: ${ready.length} ready rows`);
      const v = r.verdict;
      assert.equal(v.culprit?.culprit, 'bpf_timer_cb', v.text);
      assert.equal(v.culprit?.cpu, 1, v.text);
      assert.match(v.text, /already awake when their data arrived/);
    }
    return [requests, peerJudged];
  });
  lab.child.kill('SIGINT');
  assert.equal((await lab.done).code, 0);
});
