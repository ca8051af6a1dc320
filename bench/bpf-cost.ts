// npm run bench:bpf-cost — kernel run time of the tracer's BPF programs, from
// kernel.bpf_stats_enabled (restored after): per softirq (entry + exit) and per
// received packet (every packet hook summed: arrival + processing), under a TCP
// load and under an ICMP flood, both on loopback, with every event that is
// streamed going through the ring as in `record`.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { LiveTrace } from '../src/stream/live';

const STATS = '/proc/sys/kernel/bpf_stats_enabled';
const PACKET_HOOKS = ['rx_arrive', 'gro_arrive', 'rcv_arrive', 'skb_rcv'];

type Stats = { hook: string; runTimeNs: number; runCount: number }[];

function diff(after: Stats, before: Stats): Stats {
  return after.map((a) => {
    const b = before.find((x) => x.hook === a.hook)!;
    return { hook: a.hook, runTimeNs: a.runTimeNs - b.runTimeNs, runCount: a.runCount - b.runCount };
  });
}

function perPacket(s: Stats): { ns: number; packets: number } {
  const packets = s.find((x) => x.hook === 'skb_rcv')!.runCount;
  const ns = s.filter((x) => PACKET_HOOKS.includes(x.hook)).reduce((t, x) => t + x.runTimeNs, 0);
  return { ns: ns / Math.max(1, packets), packets };
}

/** A loopback TCP stream of small writes for `ms`: many packets, every one received. */
async function tcpLoad(ms: number): Promise<void> {
  const server = net.createServer((s) => s.on('data', () => undefined));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const sock = net.connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  await new Promise((r) => sock.once('connect', r));
  const end = Date.now() + ms;
  const chunk = Buffer.alloc(64);
  while (Date.now() < end) {
    // one write per turn of the loop, so each tends to be its own segment
    if (!sock.write(chunk)) await new Promise((r) => sock.once('drain', r));
    await new Promise((r) => setImmediate(r));
  }
  sock.destroy();
  server.close();
}

async function icmpFlood(): Promise<void> {
  const flood = spawn('ping', ['-f', '-q', '-c', '20000', '127.0.0.1'], { stdio: 'ignore' });
  const code = await new Promise((r) => flood.on('close', r));
  if (code !== 0) throw new Error(`ping -f exited with ${code}`);
}

async function main() {
  const before = fs.readFileSync(STATS, 'utf8').trim();
  fs.writeFileSync(STATS, '1');
  const trace = LiveTrace.start({});
  const session = trace.session;
  try {
    const s0 = session.programStats();
    await tcpLoad(3000);
    await new Promise((r) => setTimeout(r, 200));
    const s1 = session.programStats();
    await icmpFlood();
    await new Promise((r) => setTimeout(r, 200));
    const s2 = session.programStats();
    for (const s of diff(s2, s0))
      if (s.runCount) console.log(`${s.hook.padEnd(12)} ${String(s.runCount).padStart(9)} runs  ${(s.runTimeNs / s.runCount).toFixed(0).padStart(5)} ns/run`);
    const all = diff(s2, s0);
    const get = (h: string) => all.find((s) => s.hook === h)!;
    const perSoftirq = (get('sirq_entry').runTimeNs + get('sirq_exit').runTimeNs) / Math.max(1, get('sirq_exit').runCount);
    const withRaise = perSoftirq + get('sirq_raise').runTimeNs / Math.max(1, get('sirq_exit').runCount);
    const tcp = perPacket(diff(s1, s0));
    const icmp = perPacket(diff(s2, s1));
    console.log(`events streamed: ${trace.aggregator.totalEvents}, drops: ${session.drops().total}`);
    console.log(`bpf-cost: ${perSoftirq.toFixed(0)} ns per softirq (entry + exit), ${withRaise.toFixed(0)} ns with raise`);
    console.log(`bpf-cost: ${tcp.ns.toFixed(0)} ns per packet under TCP load (${tcp.packets} packets, all packet hooks summed)`);
    console.log(`bpf-cost: ${icmp.ns.toFixed(0)} ns per packet under an ICMP flood (${icmp.packets} packets; each is streamed for ping)`);
  } finally {
    trace.stop();
    fs.writeFileSync(STATS, before);
  }
}

main().catch((e) => {
  console.error(`bench:bpf-cost: ${e.message}`);
  process.exitCode = 1;
});
