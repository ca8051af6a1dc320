// Kernel: the join of a slow probe with the node that delayed it, between two
// network namespaces. Namespace b runs `serve` (its /explain answers about a
// caller's own echo requests) beside the lab stall with b's RPS steering to
// CPU 1; namespace a runs `ping --explain-from` at it. The slow replies are
// explained by b's own trace, matched by echo id and sequence, never by clock;
// a query about another source is refused, a bad one is a 400, too many are
// a 429, and a peer with nothing listening or one that answers garbage is one
// clear state. (Both namespaces share this host's kernel: the protocol is
// what is tested here; the two-kernel mesh is the 6.1 guest's.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import os from 'node:os';
import { CLI, NetnsPair, needsTwoCpus, readReport, skipUnlessKernel, startCli, startLab, tmpFile, waitFor } from '../helpers';
import { judgeShare, pausesOf, replyWindow, timingTest } from '../excuse';
import { NOISE } from '../noise';

const PORT = 19478;

/** serve in namespace b on b's address; resolves once it answers. */
async function serveInB(net: NetnsPair) {
  const s = startCli(['serve', '--listen', `${net.addrB}:${PORT}`, '--packet-ms', '1'], /serving http/, { prefix: ['ip', 'netns', 'exec', net.b] });
  assert.ok(await s.ready, 'serve did not start in namespace b');
  return s;
}

/** One HTTP GET from namespace a: status and body. */
function getFromA(net: NetnsPair, url: string): { status: number; body: string } {
  const js = `fetch(${JSON.stringify(url)}).then(async (r) => { process.stdout.write(r.status + '\\n' + (await r.text())); }, (e) => { process.stdout.write('0\\n' + (e.cause?.code ?? e.message)); })`;
  const r = spawnSync('ip', ['netns', 'exec', net.a, process.execPath, '-e', js], { encoding: 'utf8' });
  const [status, ...rest] = r.stdout.split('\n');
  return { status: Number(status), body: rest.join('\n') };
}

/** Five pings from a, every reply slow (--slow-ms 0.001) so the peer at `port` is always asked: exit status, stderr, stdout and the report's ping.peer. */
function askedPing(net: NetnsPair, port: number) {
  const out = tmpFile('asked.json');
  const args = ['ping', net.addrB, '-c', '5', '-i', '20', '--slow-ms', '0.001', '--explain-from', `http://${net.addrB}:${port}`, '--out', out];
  const r = spawnSync('ip', ['netns', 'exec', net.a, process.execPath, CLI, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return { stderr: r.stderr, stdout: r.stdout, peer: readReport(out).ping.peer };
}

function pingFromA(net: NetnsPair, out: string, count: number, explainFrom: string) {
  const r = spawnSync(
    'ip',
    [
      'netns',
      'exec',
      net.a,
      'taskset',
      '-c',
      '0',
      process.execPath,
      CLI,
      'ping',
      net.addrB,
      '-c',
      String(count),
      '-i',
      '23',
      '--slow-ms',
      '3',
      '--explain-from',
      explainFrom,
      '--out',
      out,
    ],
    { encoding: 'utf8' },
  );
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("ping --explain-from: the slow replies are explained by the peer's own trace (bpf_timer_cb on its CPU 1)", async (t) => {
  if (skipUnlessKernel(t) || needsTwoCpus(t)) return;
  const net = new NetnsPair();
  t.after(() => net.destroy());
  const serve = await serveInB(net);
  t.after(() => serve.child.kill('SIGKILL'));
  const lab = await startLab(net);
  t.after(() => lab.kill());
  await timingTest(t, async ({ scale }) => {
    const out = tmpFile('ping.json');
    const p = pingFromA(net, out, 200 * scale, `http://${net.addrB}:${PORT}`);
    assert.equal(p.code, 0, p.stderr);
    const r = readReport(out);
    const peer = r.ping.peer;
    assert.equal(peer?.state, 'answered', JSON.stringify(peer));
    assert.equal(peer.node, os.hostname());
    const slow = (r.ping.replies as any[]).filter((x) => x.slow);
    assert.deepEqual(
      peer.probes.map((x: any) => x.seq).sort((a: number, b: number) => a - b),
      slow.map((x) => x.seq).sort((a, b) => a - b),
      'one answer for each slow reply',
    );
    assert.match(p.stdout, /^at the peer \(/m, p.stdout);
    const there = new Map<number, any>(peer.probes.map((x: any) => [x.seq, x]));
    const window = (x: any) => replyWindow(x, r.meta.clock.realtimeOffsetNs, [0, 1]);
    // a reply can be slow on its way back (here): the peer then rightly says it did not hold it. What the peer
    // says it held must be the stall, and it must have held most of the slow replies (the stall is on its side)
    return [
      judgeShare(
        {
          what: "slow replies whose echo request the peer's trace saw held, held by bpf_timer_cb on its CPU 1",
          samples: slow.filter((x) => there.get(x.seq)?.state === 'slow'),
          window,
          ok: (x: any) => there.get(x.seq)?.culprit === 'bpf_timer_cb' && there.get(x.seq)?.culpritCpu === 1,
          minShare: 0.9,
          minSamples: 5,
          noise: NOISE.attribution,
        },
        pausesOf(r),
      ),
      judgeShare(
        {
          what: 'slow replies the peer saw held',
          samples: slow,
          window,
          ok: (x: any) => there.get(x.seq)?.state === 'slow',
          minShare: 0.5,
          minSamples: 5,
          noise: NOISE.peerSaw,
        },
        pausesOf(r),
      ),
    ];
  });
  await lab.stop();
});

test("/explain answers only about the caller's own probes; bad, foreign and too many queries are refused; absent and garbage peers are one state each", async (t) => {
  if (skipUnlessKernel(t)) return;
  const net = new NetnsPair();
  t.after(() => net.destroy());
  const serve = await serveInB(net);
  t.after(() => serve.child.kill('SIGKILL'));
  const base = `http://${net.addrB}:${PORT}`;
  // the first interval must have finished before a window can be read
  assert.ok(await waitFor(() => getFromA(net, `${base}/explain?id=1&seq=1`).status === 200, 5000), 'serve answers /explain');

  const ok = getFromA(net, `${base}/explain?proto=icmp&id=1&seq=1,2`);
  assert.equal(ok.status, 200);
  const a = JSON.parse(ok.body);
  assert.equal(a.schema, 'jitterscope.explain/v1');
  assert.deepEqual(
    a.probes.map((x: any) => [x.seq, x.state]),
    [
      [1, 'not-slow'],
      [2, 'not-slow'],
    ],
  );
  const foreign = getFromA(net, `${base}/explain?id=1&seq=1&source=198.18.0.9`);
  assert.equal(foreign.status, 403, foreign.body);
  assert.match(foreign.body, /only about the caller's own probes \(198\.18\.0\.1\)/);
  const bad = getFromA(net, `${base}/explain?id=banana&seq=1`);
  assert.equal(bad.status, 400, bad.body);
  assert.match(bad.body, /^id: 'banana' is not an echo id/);
  // a flood of queries: at most 20 a second are answered, the rest are told to wait; serve stays up
  const js = `Promise.all(Array.from({ length: 60 }, () => fetch(${JSON.stringify(`${base}/explain?id=1&seq=1`)}).then((r) => r.status))).then((s) => process.stdout.write(JSON.stringify(s)))`;
  const statuses: number[] = JSON.parse(spawnSync('ip', ['netns', 'exec', net.a, process.execPath, '-e', js], { encoding: 'utf8' }).stdout);
  assert.ok(
    statuses.every((s) => s === 200 || s === 429),
    JSON.stringify(statuses),
  );
  assert.ok(statuses.filter((s) => s === 429).length >= 20, `most of a burst of 60 is refused: ${JSON.stringify(statuses)}`);
  assert.equal(getFromA(net, `${base}/healthz`).status, 200, 'serve still answers');

  // nothing listens there: the ping still ends well, and says so
  const n = askedPing(net, PORT + 1);
  assert.equal(n.peer.state, 'no-answer', JSON.stringify(n.peer));
  assert.match(n.peer.detail, /ECONNREFUSED/);
  assert.match(n.stderr, /--explain-from .*: no-answer/);

  // something that is not jitterscope answers there
  const garbage = spawn('ip', [
    'netns',
    'exec',
    net.b,
    process.execPath,
    '-e',
    `require('http').createServer((q, s) => s.end('hello')).listen(${PORT + 2}, ${JSON.stringify(net.addrB)})`,
  ]);
  t.after(() => garbage.kill('SIGKILL'));
  assert.ok(await waitFor(() => getFromA(net, `http://${net.addrB}:${PORT + 2}/`).status === 200, 5000), 'the garbage server is up');
  const g = askedPing(net, PORT + 2);
  assert.equal(g.peer.state, 'not-jitterscope', JSON.stringify(g.peer));
  assert.match(g.peer.detail, /not a jitterscope\.explain\/v1 answer \(not JSON\): "hello"/);
  assert.match(g.stdout, /not-jitterscope/);

  serve.child.kill('SIGTERM');
  assert.equal((await serve.done).code, 0);
});

test('--explain-from takes an http:// address, checked before anything attaches', async (t) => {
  if (skipUnlessKernel(t)) return;
  const r = spawnSync(process.execPath, [CLI, 'ping', '127.0.0.1', '-c', '1', '--explain-from', 'ftp://x'], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--explain-from: 'ftp:\/\/x' is not the http:\/\/ address of a jitterscope serve/);
  assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
});
