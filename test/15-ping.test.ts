// Kernel: `jitterscope ping` across two namespaces with RPS steering to CPU 1,
// with and without `jitterscope lab` stalling CPU 1, and its bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { CLI, NetnsPair, readJson, runCli, sh, skipUnlessKernel, tmpFile, tracerPrograms, validator, waitFor, unlessStolen, needsTwoCpus, startLab } from './helpers';


function pingFromA(net: NetnsPair, out: string) {
  const r = spawnSync(
    'ip',
    ['netns', 'exec', net.a, 'taskset', '-c', '0', process.execPath, CLI, 'ping', net.addrB, '-c', '100', '-i', '50', '--slow-ms', '3', '--out', out],
    { encoding: 'utf8' },
  );
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('ping names bpf_timer_cb on CPU 1 behind the slow replies; a control run names nothing', async (t) => {
  if (skipUnlessKernel(t) || needsTwoCpus(t)) return;
  await unlessStolen(t, async () => {
    const net = new NetnsPair();
    t.after(() => net.destroy());
    // RPS steers what arrives on either end to CPU 1; ping runs on CPU 0
    sh(`ip netns exec ${net.a} sh -c 'echo 2 > /sys/class/net/va/queues/rx-0/rps_cpus'`);

    // control first: RPS on CPU 1 but no stall
    const control = tmpFile('control.json');
    const c = pingFromA(net, control);
    assert.equal(c.code, 0, c.stderr);
    const cr = readJson(control);
    assert.ok(validator()(cr));
    assert.equal(cr.ping.verdict.received, 100);
    assert.equal(cr.ping.replies.filter((r: any) => r.attribution?.culprit === 'bpf_timer_cb').length, 0);
    assert.equal(cr.ping.verdict.culprit, null);
    assert.match(c.stdout, /No slow replies|No culprit found/);

    // the lab stall on CPU 1, with RPS on vb set (and later restored) by `lab`
    const lab = await startLab(net);
    t.after(() => lab.kill());
    assert.equal(sh(`ip netns exec ${net.b} cat /sys/class/net/vb/queues/rx-0/rps_cpus`).trim(), '2');

    const out = tmpFile('ping.json');
    const p = pingFromA(net, out);
    assert.equal(p.code, 0, p.stderr);
    const r = readJson(out);
    const validate = validator();
    assert.ok(validate(r), JSON.stringify(validate.errors?.slice(0, 3)));
    const rows = r.ping.replies as any[];
    assert.equal(rows.length, 100);
    const offCpu1 = rows.filter((x) => x.requestCpu !== 1 || x.replyCpu !== 1);
    assert.ok(offCpu1.length <= 2, `RPS put both directions on CPU 1: ${JSON.stringify(offCpu1.slice(0, 3))}`);
    const slow = rows.filter((x) => x.rttMs !== null && x.rttMs > 3);
    assert.ok(slow.length >= 5, `only ${slow.length} replies slower than 3 ms`);
    const named = slow.filter((x) => x.attribution?.culprit === 'bpf_timer_cb' && x.attribution.cpu === 1);
    assert.ok(named.length >= 0.9 * slow.length, `${named.length} of ${slow.length} slow replies attributed to bpf_timer_cb`);
    const v = r.ping.verdict;
    assert.equal(v.culprit.culprit, 'bpf_timer_cb');
    assert.equal(v.culprit.cpu, 1);
    assert.ok(Math.abs(v.culprit.runs.maxMs - 15) < 3, `runs max ${v.culprit.runs.maxMs}`);
    assert.equal(v.rps.interface, 'va');
    assert.equal(v.rps.steersToCulpritCpu, true);
    assert.match(p.stdout, /Culprit: bpf_timer_cb on CPU 1/);
    assert.match(p.stdout, /RPS on va: rx-0=CPU 1 — steers received packets to CPU 1/);

    await lab.stop();
    assert.match(lab.stderr(), /lab: stopped \(SIGINT\) after \d+ stalls/);
    assert.equal(sh(`ip netns exec ${net.b} cat /sys/class/net/vb/queues/rx-0/rps_cpus`).trim(), '0', 'lab restored rps_cpus');
    assert.ok(await waitFor(() => tracerPrograms().length === 0, 3000));
  });
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
    ['lab', '--cpu', '99'],
    ['lab', '--stall-ms', '300', '--period-ms', '200'],
    ['lab', '--rps', 'nosuch0'],
  ];
  for (const args of cases) {
    const r = await runCli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /pinging|lab: stalling/);
  }
  assert.ok(await waitFor(() => tracerPrograms().length === 0, 3000));
});
