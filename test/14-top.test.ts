// Kernel: `jitterscope top` on a terminal (tmux, read back with capture-pane)
// against the lab stall, in plain-text mode, and under a synthetic 1 M
// events/s load to show the display keeps its refresh clock and the rate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { LabStall } from '../src/kernel/lab-stall';
import { native } from '../src/kernel/addon';
import { CLI, NetnsPair, runCli, skipUnlessKernel, startLab, tmpFile, tracerPrograms, waitFor, unlessStolen } from './helpers';
import { sparkLevel } from '../src/top/sparkline';

const STALL_MS = 15;

function tmux(...args: string[]): string {
  const r = spawnSync('tmux', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Runs `top` in a detached tmux session; the exit status lands in a file. */
function startTop(args: string[]) {
  const session = `jstop${process.pid}`;
  const exitFile = tmpFile('exit');
  spawnSync('tmux', ['kill-session', '-t', session]);
  const cmd = `'${process.execPath}' '${CLI}' top ${args.join(' ')}; echo $? > '${exitFile}'; sleep 60`;
  tmux('new-session', '-d', '-s', session, '-x', '170', '-y', '45', cmd);
  return {
    capture: () => tmux('capture-pane', '-p', '-t', session),
    keys: (...k: string[]) => tmux('send-keys', '-t', session, ...k),
    exitCode: () => (fs.existsSync(exitFile) ? fs.readFileSync(exitFile, 'utf8').trim() : null),
    kill: () => spawnSync('tmux', ['kill-session', '-t', session]),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function needsTmuxAndTwoCpus(t: { skip: (m?: string) => void }): boolean {
  const why =
    spawnSync('tmux', ['-V']).status !== 0 ? 'tmux is not installed' : native().numPossibleCpus < 2 ? 'needs CPU 1' : null;
  if (!why) return false;
  process.stderr.write(`SKIP: ${why}\n`);
  t.skip(why);
  return true;
}

test('dashboard: CPU 1 and bpf_timer_cb stand out; pause, drill-down, help and quit work', async (t) => {
  if (skipUnlessKernel(t) || needsTmuxAndTwoCpus(t)) return;
  await unlessStolen(t, async () => {
    const stall = new LabStall({ cpu: 1, stallMs: STALL_MS, periodMs: 200 });
    const top = startTop(['--delay', '1s']);
    t.after(() => {
      top.kill();
      stall.stop();
    });
    assert.ok(await waitFor(() => /bpf_timer_cb/.test(top.capture()), 8000), top.capture());
    await sleep(1500);
    const screen = top.capture();
    const own = stall.stats();

    // the per-CPU table: CPU 1's longest callback is the stall, CPU 0's is not
    const cpuRow = (cpu: number) => screen.split('\n').find((l) => new RegExp(`^.${cpu}\\s+[-0-9]`).test(l)) ?? '';
    assert.match(cpuRow(1), /bpf_timer_cb 1[45]\.\d+ms/, screen);
    assert.doesNotMatch(cpuRow(0), /bpf_timer_cb/);
    // the callbacks table: bpf_timer_cb on CPU 1 with a max near what the stall measured
    const row = screen.split('\n').find((l) => /bpf_timer_cb\s+1\s+\d+/.test(l));
    assert.ok(row, screen);
    const m = /bpf_timer_cb\s+1\s+(\d+)\s+\S+\s+(\d+(?:\.\d+)?)ms/.exec(row!)!;
    const maxMs = parseFloat(m[2]);
    assert.ok(Math.abs(maxMs - own.maxNs / 1e6) <= 0.2 * (own.maxNs / 1e6), `max ${maxMs} ms vs stall's ${own.maxNs / 1e6} ms`);
    assert.match(screen, /recent stalls/);
    assert.match(screen, /cpu 1\s+1[45]\.\d+ms\s+bpf_timer_cb/);
    assert.match(screen, /q quit .* \? help/, 'footer shows the keys');

    // pause: the screen freezes and says so
    top.keys('p');
    await sleep(600);
    const paused1 = top.capture();
    assert.match(paused1, /PAUSED/);
    await sleep(2200);
    assert.equal(top.capture(), paused1, 'screen changed while paused');
    top.keys('p');
    await sleep(1500);
    assert.doesNotMatch(top.capture(), /PAUSED/);

    // drill down into CPU 1, step to the HRTIMER softirq histogram
    top.keys('Down', 'Enter');
    await sleep(300);
    top.keys('Right', 'Right', 'Right');
    await sleep(1500);
    assert.match(top.capture(), /HRTIMER softirq on CPU 1[\s\S]*\[8M, 16M\)\s+\d+ \|@+/);

    top.keys('?');
    await sleep(400);
    assert.match(top.capture(), /detaches the probes first/);
    top.keys('x');
    await sleep(300);
    assert.ok(tracerPrograms().length >= 7, 'probes attached while running');
    top.keys('q');
    assert.ok(await waitFor(() => top.exitCode() !== null, 5000), 'top did not exit on q');
    assert.equal(top.exitCode(), '0');
    assert.ok(await waitFor(() => tracerPrograms().length === 0, 3000), 'programs left after quit');
  });
});

/** The newest `n` seconds of a CPU's NET_RX sparkline on the screen, as levels (-1: no NET_RX that second). */
function sparkTail(screen: string, cpu: number, n: number): number[] {
  const m = new RegExp(`cpu ${cpu}\\s+(.{60})\\|`, 'u').exec(screen);
  if (!m) return [];
  return [...m[1]].slice(-n).map(sparkLevel);
}

test('dashboard: the NET_RX sparkline of the stalled CPU rises with the stall and falls after it', async (t) => {
  if (skipUnlessKernel(t) || needsTmuxAndTwoCpus(t)) return;
  await unlessStolen(t, async () => {
    const net = new NetnsPair();
    t.after(() => net.destroy());
    const top = startTop(['--delay', '1s']);
    t.after(() => top.kill());
    // a ping every 10 ms into namespace b, whose vb steers it (by RPS, once lab runs) to CPU 1
    const pinger = spawn('ip', net.exec(net.a, ['ping', '-q', '-n', '-i', '0.01', net.addrB]), { stdio: 'ignore' });
    t.after(() => pinger.kill());
    assert.ok(await waitFor(() => /NET_RX wait, last 60 s/.test(top.capture()), 8000), top.capture());
    const lab = await startLab(net);
    t.after(() => lab.kill());
    // rise: a 15 ms stall holds NET_RX on CPU 1 for up to 15 ms: level 4 (3-10 ms) or more within the last 3 s
    const rose = await waitFor(() => sparkTail(top.capture(), 1, 3).some((l) => l >= 4), 10_000, 250);
    assert.ok(rose, `no rise on CPU 1:\n${top.capture()}`);
    await lab.stop();
    // fall: 3 s in a row with CPU 1's NET_RX wait under 1 ms (levels 0-2), and the rise still in the history
    const fell = await waitFor(() => {
      const tail = sparkTail(top.capture(), 1, 3);
      return tail.length === 3 && tail.every((l) => l >= 0 && l <= 2);
    }, 12_000, 250);
    const screen = top.capture();
    assert.ok(fell, `no fall on CPU 1:\n${screen}`);
    assert.ok(sparkTail(screen, 1, 60).some((l) => l >= 4), 'the rise is still in the last minute');
    top.keys('q');
    assert.ok(await waitFor(() => top.exitCode() === '0', 5000));
  });
});

test('dashboard keeps its refresh clock and shows the rate under 1 M synthetic events/s', async (t) => {
  if (skipUnlessKernel(t) || needsTmuxAndTwoCpus(t)) return;
  await unlessStolen(t, async () => {
    const top = startTop(['--delay', '1s', '--synthetic-rate', '1M']);
    t.after(() => top.kill());
    assert.ok(await waitFor(() => /events [\d,]+\/s/.test(top.capture()), 8000), top.capture());
    await sleep(1500);
    const clocks: string[] = [];
    const rates: number[] = [];
    for (let i = 0; i < 5; i++) {
      const head = top.capture().split('\n')[0];
      clocks.push(/(\d\d:\d\d:\d\d)\s*$/.exec(head)?.[1] ?? '');
      rates.push(Number(/events ([\d,]+)\/s/.exec(head)?.[1].replace(/,/g, '') ?? 0));
      await sleep(1000);
    }
    assert.ok(new Set(clocks).size >= 4, `header clock advanced: ${clocks.join(' ')}`);
    assert.ok(rates.every((r) => r >= 800_000 && r <= 1_200_000), `rates ${rates.join(' ')}`);
    assert.doesNotMatch(top.capture().split('\n')[0], /drops [1-9]/);
    top.keys('q');
    assert.ok(await waitFor(() => top.exitCode() === '0', 5000));
  });
});

test('plain text without a terminal: --once and -n blocks on time at 1 M events/s', async (t) => {
  if (skipUnlessKernel(t)) return;
  await unlessStolen(t, async () => {
    const once = await runCli(['top', '--once', '--delay', '500ms']);
    assert.equal(once.code, 0, once.stderr);
    assert.equal((once.stdout.match(/^jitterscope top /gm) ?? []).length, 1);
    assert.match(once.stdout, /^CPU\s+pkt wait p99\s+max\s+NET_RX wait p99/m);

    const r = await runCli(['top', '-n', '5', '-d', '1s', '--synthetic-rate', '1M']);
    assert.equal(r.code, 0, r.stderr);
    const heads = [...r.stdout.matchAll(/^jitterscope top (\S+)\s+window 1s\s+events (\d+)\/s\s+drops (\d+)/gm)];
    assert.equal(heads.length, 5, r.stdout.slice(0, 2000));
    const times = heads.map((h) => Date.parse(h[1]));
    for (let i = 1; i < times.length; i++) {
      const gap = times[i] - times[i - 1];
      assert.ok(gap > 800 && gap < 1300, `refresh gap ${gap} ms`);
    }
    for (const h of heads.slice(1)) assert.ok(Number(h[2]) >= 800_000, `rate ${h[2]}/s`);
    assert.ok(heads.every((h) => h[3] === '0'), 'no drops');
    assert.ok(await waitFor(() => tracerPrograms().length === 0, 3000), 'programs left after top -n');
  });
});

test('top rejects bad input with one line and exit 2', async () => {
  for (const args of [['top', '--delay', 'soon'], ['top', '--delay', '10ms'], ['top', '--window', '5m'], ['top', '-n', '0'], ['top', '--synthetic-rate', 'lots']]) {
    const r = await runCli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});
