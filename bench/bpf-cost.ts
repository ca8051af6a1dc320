// npm run bench:bpf-cost — kernel run time of the tracer's BPF programs per
// softirq while a ping flood on loopback makes NET_RX softirqs, with every
// event streamed to user space. Uses kernel.bpf_stats_enabled (restored after).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { LiveTrace } from '../src/stream/live';

const STATS = '/proc/sys/kernel/bpf_stats_enabled';

async function main() {
  const before = fs.readFileSync(STATS, 'utf8').trim();
  fs.writeFileSync(STATS, '1');
  const trace = LiveTrace.start({});
  const session = trace.session;
  try {
    // spawn, not spawnSync: the event loop must keep consuming, as in `record`
    const flood = spawn('ping', ['-f', '-q', '-c', '20000', '127.0.0.1'], { stdio: 'ignore' });
    const code = await new Promise((r) => flood.on('close', r));
    if (code !== 0) throw new Error(`ping -f exited with ${code}`);
    await new Promise((r) => setTimeout(r, 200));
    const stats = session.programStats();
    const get = (h: string) => stats.find((s) => s.hook === h)!;
    for (const s of stats)
      if (s.runCount) console.log(`${s.hook.padEnd(12)} ${String(s.runCount).padStart(9)} runs  ${(s.runTimeNs / s.runCount).toFixed(0).padStart(5)} ns/run`);
    const entry = get('sirq_entry');
    const exit = get('sirq_exit');
    const raise = get('sirq_raise');
    const perSoftirq = (entry.runTimeNs + exit.runTimeNs) / Math.max(1, exit.runCount);
    const withRaise = (entry.runTimeNs + exit.runTimeNs + raise.runTimeNs) / Math.max(1, exit.runCount);
    console.log(`events streamed: ${trace.aggregator.totalEvents}, drops: ${session.drops().total}`);
    console.log(`bpf-cost: ${perSoftirq.toFixed(0)} ns per softirq (entry + exit), ${withRaise.toFixed(0)} ns with raise`);
  } finally {
    trace.stop();
    fs.writeFileSync(STATS, before);
  }
}

main().catch((e) => {
  console.error(`bench:bpf-cost: ${e.message}`);
  process.exitCode = 1;
});
