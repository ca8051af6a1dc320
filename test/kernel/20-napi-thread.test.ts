// Kernel: threaded NAPI (/sys/class/net/DEV/threaded = 1). The receiving veth
// polls in a NAPI thread pinned to CPU 1, where a SCHED_FIFO task busy-loops
// 30 ms every 300 ms. The thread waits behind it, and so do the packets in
// its ring. `record` must time the thread from its wakeup (receive stalls
// flagged with its pid), time its packets from that wakeup, and name the task.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { NetnsPair, needsTwoCpus, readReport, sh, skipIf, skipUnlessKernel, startCli, tmpFile, waitFor } from '../helpers';
import { timingTest } from '../excuse';
import { judgeSpinnerBlame } from '../spinner';

/** The veth's NAPI thread (napi/vb-ID) once threaded is on, pinned to CPU 1. */
async function threadedVb(net: NetnsPair): Promise<number> {
  // veth polls in NAPI only with GRO on; it hands a packet to GRO only if the sender does not segment (TSO off)
  sh(`ip netns exec ${net.b} ethtool -K vb gro on >/dev/null && ip netns exec ${net.a} ethtool -K va tso off >/dev/null`);
  sh(`ip netns exec ${net.b} sh -c 'echo 1 > /sys/class/net/vb/threaded'`);
  let pid = 0;
  await waitFor(() => {
    const m = /^\s*(\d+)\s+napi\/vb-/m.exec(spawnSync('ps', ['-eo', 'pid,comm'], { encoding: 'utf8' }).stdout);
    pid = m ? Number(m[1]) : 0;
    return pid > 0;
  }, 5000);
  assert.ok(pid > 0, 'vb has a NAPI thread');
  sh(`taskset -pc 1 ${pid} >/dev/null`);
  return pid;
}

/** A SCHED_FIFO task on CPU 1: busy 30 ms, asleep 270 ms, for `seconds`. */
function startSpinner(seconds: number) {
  const body =
    `const s=new Int32Array(new SharedArrayBuffer(4));const end=Date.now()+${seconds * 1000};` +
    'while(Date.now()<end){const t=Date.now();while(Date.now()-t<30){}Atomics.wait(s,0,0,270)}';
  const p = spawn('chrt', ['-f', '50', 'taskset', '-c', '1', process.execPath, '-e', body], { stdio: 'ignore' });
  return { pid: p.pid!, done: new Promise<void>((r) => p.on('close', () => r())), kill: () => p.kill('SIGKILL') };
}

function pingFromA(net: NetnsPair, id: number, count: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('ip', net.exec(net.a, ['taskset', '-c', '0', 'ping', '-4', '-q', '-n', '-e', String(id), '-c', String(count), '-i', '0.013', net.addrB]), {
      stdio: 'ignore',
    });
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`ping exited ${code}`))));
  });
}

test('threaded NAPI: a poll thread held up by a SCHED_FIFO task is a receive stall, and its packets are blamed on the task', async (t) => {
  if (skipUnlessKernel(t) || needsTwoCpus(t)) return;
  if (skipIf(t, spawnSync('ethtool', ['--version']).status === 0 ? null : 'ethtool is not installed (scripts/setup.sh --tests installs it)')) return;
  const net = new NetnsPair();
  t.after(() => net.destroy());
  const napiPid = await threadedVb(net);
  await timingTest(t, async ({ scale }) => {
    const seconds = 8 * scale;
    const out = tmpFile('napi-thread.json');
    const rec = startCli(['record', '-d', `${seconds}s`, '-o', out], /tracing for/);
    assert.ok(await rec.ready, 'record never said it was tracing');
    const spin = startSpinner(seconds - 1);
    t.after(() => spin.kill());
    await pingFromA(net, 6101, Math.floor(((seconds - 1.5) * 1000) / 13));
    await spin.done;
    const res = await rec.done;
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stderr, /note: NAPI threads \(threaded=1\) [^\n]*napi\/vb-/, 'the NAPI threads are said');
    const r = readReport(out);
    assert.ok(r.meta.probes.net_rx_wait.hooks.includes('sched:sched_wakeup'), JSON.stringify(r.meta.probes.net_rx_wait));

    const spinner = `node[${spin.pid}]`;
    const stalls = (r.receive?.stalls ?? []).filter((x: any) => x.napiThread !== null);
    assert.ok(
      stalls.every((x: any) => x.napiThread === napiPid && x.cpu === 1 && !x.deferred),
      `NAPI thread stalls are vb's thread's, on CPU 1: ${JSON.stringify(stalls.slice(0, 3))}`,
    );
    // the echo requests the thread polled: timed from its wakeup, not from when the poll saw them
    const requests = r.packets.slow.filter((p: any) => p.id === 6101 && p.type === 8 && p.cpu === 1 && p.waitNs >= 5e6);
    assert.ok(
      requests.every((p: any) => p.path === 'napi' || p.path === 'napi-bound'),
      `paths: ${[...new Set(requests.map((p: any) => p.path))]}`,
    );
    const judgements = judgeSpinnerBlame(r, spinner, stalls, requests, 'NAPI thread runs', 5);
    if (judgements.every((j) => j.verdict === 'pass')) {
      assert.equal(r.verdict.culprit?.culprit, spinner, r.verdict.text);
      assert.match(r.verdict.text, /NAPI thread runs, timed from the thread's wakeup/);
    }
    return judgements;
  });
});
