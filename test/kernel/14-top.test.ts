// Kernel: `jitterscope top` on a terminal (tmux, read back with capture-pane)
// against the lab stall, in plain-text mode, and under a synthetic 1 M
// events/s load to show the display keeps its refresh clock and the rate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { LabStall } from '../../src/kernel/lab-stall';
import { native } from '../../src/kernel/addon';
import { CLI, injectedPauses, NetnsPair, runCli, skipIf, skipUnlessKernel, startLab, tmpFile, tracerPrograms, waitFor } from '../helpers';
import { judgeShare, markedPauses, timingTest } from '../excuse';
import { CPU_TABLE_HEAD } from '../../src/report/text';
import { sparkLevel } from '../../src/top/sparkline';
import { NOISE } from '../noise';

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
  return skipIf(t, spawnSync('tmux', ['-V']).status !== 0 ? 'tmux is not installed' : native().numPossibleCpus < 2 ? 'needs CPU 1' : null);
}

/** The column of the per-CPU table that shows pauses (CPU_TABLE_HEAD), counted in whitespace-separated cells. */
const PAUSED_CELL = CPU_TABLE_HEAD.indexOf('paused max');

/** CPUs whose row in a per-CPU table (screen or plain text) shows a pause in its window. */
function pausedCpus(text: string): number[] {
  const cpus: number[] = [];
  for (const line of text.split('\n')) {
    const m = /^x?(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const cells = [m[1], ...m[2].trim().split(/\s+/)];
    if (cells.length > PAUSED_CELL && cells[PAUSED_CELL] !== '-') cpus.push(Number(m[1]));
  }
  return cpus;
}

test('dashboard: CPU 1 and bpf_timer_cb stand out; pause, drill-down, help and quit work', async (t) => {
  if (skipUnlessKernel(t) || needsTmuxAndTwoCpus(t)) return;
  const stall = new LabStall({ cpu: 1, stallMs: STALL_MS, periodMs: 200, ...injectedPauses() });
  const top = startTop(['--delay', '1s']);
  t.after(() => {
    top.kill();
    stall.stop();
  });
  assert.ok(await waitFor(() => /bpf_timer_cb/.test(top.capture()), 8000), top.capture());
  await sleep(1500);
  const screen = top.capture();
  const own = stall.stats();
  // every run the screen shows is one the stall timed itself: between its shortest and longest run
  // (a host pause stretches a run for the stall and the tracer alike)
  const isStallRun = (shown: number) => shown >= own.minNs / 1e6 - 0.1 && shown <= own.maxNs / 1e6 + 0.1;

  // the per-CPU table: CPU 1's longest callback is the stall, CPU 0's is not
  const cpuRow = (cpu: number) => screen.split('\n').find((l) => new RegExp(`^.${cpu}\\s+[-0-9]`).test(l)) ?? '';
  const longest = /bpf_timer_cb (\d+\.\d+)ms/.exec(cpuRow(1));
  assert.ok(longest && isStallRun(Number(longest[1])), `CPU 1's longest callback: ${cpuRow(1)} (stall's own runs ${own.minNs / 1e6}-${own.maxNs / 1e6} ms)`);
  assert.doesNotMatch(cpuRow(0), /bpf_timer_cb/);
  // the callbacks table: bpf_timer_cb on CPU 1, its max one of the stall's runs
  const row = screen.split('\n').find((l) => /bpf_timer_cb\s+1\s+\d+/.test(l));
  assert.ok(row, screen);
  const m = /bpf_timer_cb\s+1\s+(\d+)\s+\S+\s+(\d+(?:\.\d+)?)ms/.exec(row!)!;
  assert.ok(isStallRun(parseFloat(m[2])), `max ${m[2]} ms vs stall's runs ${own.minNs / 1e6}-${own.maxNs / 1e6} ms`);
  assert.match(screen, /recent stalls/);
  const listed = /cpu 1\s+(\d+\.\d+)ms\s+bpf_timer_cb/.exec(screen);
  assert.ok(listed && isStallRun(Number(listed[1])), `a stall run listed: ${screen}`);
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

  // drill down into CPU 1, step past packet wait, NET_RX wait, NET_RX run and TIMER to HRTIMER
  top.keys('Down', 'Enter');
  await sleep(300);
  top.keys('Right', 'Right', 'Right', 'Right');
  await sleep(1500);
  // the stall's runs: 15 ms, or longer where a pause stretched one
  assert.match(top.capture(), /HRTIMER softirq on CPU 1[\s\S]*\[(8M, 16M|16M, 32M)\)\s+\d+ \|@+/);

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

/** The newest `n` seconds of a CPU's NET_RX sparkline on the screen, as levels (-1: no NET_RX that second). */
function sparkTail(screen: string, cpu: number, n: number): number[] {
  const m = new RegExp(`cpu ${cpu}\\s+(.{60})\\|`, 'u').exec(screen);
  if (!m) return [];
  return [...m[1]].slice(-n).map(sparkLevel);
}

test('dashboard: the NET_RX sparkline of the stalled CPU rises with the stall and falls after it', async (t) => {
  if (skipUnlessKernel(t) || needsTmuxAndTwoCpus(t)) return;
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
  await sleep(1500);
  // fall, a timing sample a second: each second the screen shows, CPU 1's newest NET_RX level
  // must be under 1 ms (levels 0-2) unless the per-CPU table shows a pause on CPU 1 that second
  await timingTest(t, async ({ scale }) => {
    const seconds: { level: number; paused: boolean }[] = [];
    for (let i = 0; i < 6 * scale; i++) {
      const screen = top.capture();
      const tail = sparkTail(screen, 1, 1);
      assert.equal(tail.length, 1, `CPU 1's sparkline is on the screen:\n${screen}`);
      seconds.push({ level: tail[0], paused: pausedCpus(screen).includes(1) });
      await sleep(1000);
    }
    const samples = seconds.map((s, i) => ({ ...s, i }));
    const { pauses, window } = markedPauses(samples);
    return [
      judgeShare(
        {
          what: 'seconds after the stall with CPU 1 NET_RX wait under 1 ms',
          samples,
          window,
          ok: (s) => s.level <= 2,
          minShare: 0.8,
          minSamples: 4,
          noise: NOISE.refresh,
        },
        pauses,
      ),
    ];
  });
  const screen = top.capture();
  assert.ok(
    sparkTail(screen, 1, 60).some((l) => l >= 4),
    'the rise is still in the last minute',
  );
  top.keys('q');
  assert.ok(await waitFor(() => top.exitCode() === '0', 5000));
});

test('dashboard keeps its refresh clock and shows the rate under 1 M synthetic events/s', async (t) => {
  if (skipUnlessKernel(t) || needsTmuxAndTwoCpus(t)) return;
  const top = startTop(['--delay', '1s', '--synthetic-rate', '1M']);
  t.after(() => top.kill());
  assert.ok(await waitFor(() => /events [\d,]+\/s/.test(top.capture()), 8000), top.capture());
  await sleep(1500);
  await timingTest(t, async ({ scale }) => {
    const refreshes: { clock: string; rate: number; drops: number; paused: boolean; i: number }[] = [];
    for (let i = 0; i < 5 * scale; i++) {
      const screen = top.capture();
      const head = screen.split('\n')[0];
      const clock = /(\d\d:\d\d:\d\d)\s*$/.exec(head)?.[1];
      const rate = /events ([\d,]+)\/s/.exec(head)?.[1];
      assert.ok(clock && rate, `the header shows the clock and the rate: ${head}`);
      refreshes.push({
        clock,
        rate: Number(rate.replace(/,/g, '')),
        drops: Number(/drops (\d+)/.exec(head)?.[1] ?? 0),
        paused: pausedCpus(screen).length > 0,
        i,
      });
      await sleep(1000);
    }
    const { pauses, window } = markedPauses(refreshes);
    const clean = refreshes.filter((r) => !r.paused);
    return [
      judgeShare(
        {
          what: 'refreshes at 0.8-1.2 M events/s without drops',
          samples: refreshes,
          window,
          ok: (r) => r.rate >= 800_000 && r.rate <= 1_200_000 && r.drops === 0,
          minShare: 1,
          minSamples: 3,
          noise: NOISE.refresh,
          show: (r) => `#${r.i} ${r.clock} ${r.rate}/s drops ${r.drops}`,
        },
        pauses,
      ),
      // a paused refresh may repeat its neighbour's clock: judged on the clean ones, and too few of those
      // (pauses took the rest) means run again, not fail
      judgeShare(
        {
          what: 'refreshes with a clock of their own (one a second)',
          samples: refreshes,
          window,
          ok: (r) => clean.filter((o) => o.clock === r.clock).length <= 2,
          minShare: 1,
          minSamples: 3,
          noise: NOISE.refresh,
        },
        pauses,
      ),
    ];
  });
  top.keys('q');
  assert.ok(await waitFor(() => top.exitCode() === '0', 5000));
});

test('plain text without a terminal: --once and -n blocks on time at 1 M events/s', async (t) => {
  if (skipUnlessKernel(t)) return;
  const once = await runCli(['top', '--once', '--delay', '500ms']);
  assert.equal(once.code, 0, once.stderr);
  assert.equal((once.stdout.match(/^jitterscope top /gm) ?? []).length, 1);
  assert.match(once.stdout, /^CPU\s+pkt wait p99\s+max\s+NET_RX wait p99/m);

  await timingTest(t, async ({ scale }) => {
    const n = 5 * scale;
    const r = await runCli(['top', '-n', String(n), '-d', '1s', '--synthetic-rate', '1M']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(await waitFor(() => tracerPrograms().length === 0, 3000), 'programs left after top -n');
    const blocks = r.stdout.split(/^(?=jitterscope top )/m).filter((b) => b.startsWith('jitterscope top '));
    assert.equal(blocks.length, n, r.stdout.slice(0, 2000));
    const heads = blocks.map((b, i) => {
      const h = /^jitterscope top (\S+)\s+window 1s\s+events (\d+)\/s\s+drops (\d+)/.exec(b);
      assert.ok(h, `block ${i} header: ${b.split('\n')[0]}`);
      return { i, at: Date.parse(h[1]), rate: Number(h[2]), drops: Number(h[3]), paused: pausedCpus(b).length > 0 };
    });
    // a block is one timing sample: its gap to the one before, its rate and drops; the first has no gap and a partial rate
    const samples = heads.slice(1).map((h) => ({ ...h, gap: h.at - heads[h.i - 1].at }));
    const { pauses, window } = markedPauses(samples);
    return [
      judgeShare(
        {
          what: 'blocks 0.8-1.3 s apart at >= 0.8 M events/s without drops',
          samples,
          window,
          ok: (h) => h.gap > 800 && h.gap < 1300 && h.rate >= 800_000 && h.drops === 0,
          minShare: 1,
          minSamples: 3,
          noise: NOISE.refresh,
        },
        pauses,
      ),
    ];
  });
});

test('top rejects bad input with one line and exit 2', async () => {
  for (const args of [
    ['top', '--delay', 'soon'],
    ['top', '--delay', '10ms'],
    ['top', '--window', '5m'],
    ['top', '-n', '0'],
    ['top', '--synthetic-rate', 'lots'],
  ]) {
    const r = await runCli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});
