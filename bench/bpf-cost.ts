// npm run bench:bpf-cost — kernel run time of the tracer's BPF programs, from
// kernel.bpf_stats_enabled (restored after): per softirq (entry + exit) and per
// received packet (every packet hook summed: arrival + processing), under a TCP
// load and under an ICMP flood, both on loopback. Two modes in one run, side by
// side: streaming (record, top, ping: every run through the ring) and serve
// (short runs counted in the kernel's histograms, only the long ones streamed).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { LiveTrace, LiveTraceOptions } from '../src/stream/live';

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

interface Cost {
  perSoftirq: number;
  withRaise: number;
  tcp: { ns: number; packets: number };
  icmp: { ns: number; packets: number };
  streamed: number;
  drops: number;
  hooks: Stats;
}

/** One mode's figures: the TCP load, then the ICMP flood, under one trace. */
async function measure(opts: LiveTraceOptions): Promise<Cost> {
  const trace = LiveTrace.start(opts);
  const session = trace.session;
  try {
    const s0 = session.programStats();
    await tcpLoad(3000);
    await new Promise((r) => setTimeout(r, 200));
    const s1 = session.programStats();
    await icmpFlood();
    await new Promise((r) => setTimeout(r, 200));
    const s2 = session.programStats();
    const all = diff(s2, s0);
    const get = (h: string) => all.find((s) => s.hook === h)!;
    const runs = Math.max(1, get('sirq_exit').runCount);
    const perSoftirq = (get('sirq_entry').runTimeNs + get('sirq_exit').runTimeNs) / runs;
    session.drain();
    return {
      perSoftirq,
      withRaise: perSoftirq + get('sirq_raise').runTimeNs / runs,
      tcp: perPacket(diff(s1, s0)),
      icmp: perPacket(diff(s2, s1)),
      streamed: trace.aggregator.totalEvents,
      drops: session.drops().total,
      hooks: all,
    };
  } finally {
    trace.stop();
  }
}

async function main() {
  const before = fs.readFileSync(STATS, 'utf8').trim();
  fs.writeFileSync(STATS, '1');
  try {
    // record/top/ping stream every run; serve counts short runs in the kernel
    const stream = await measure({});
    const serve = await measure({ kernelHistsBelowNs: 1e6, streamIcmp: false, ringBytes: 1 << 20 });
    console.log(`${'hook'.padEnd(12)} ${'stream ns/run'.padStart(14)} ${'serve ns/run'.padStart(13)} ${'runs'.padStart(9)}`);
    for (const a of stream.hooks) {
      const b = serve.hooks.find((x) => x.hook === a.hook)!;
      if (!a.runCount && !b.runCount) continue;
      const per = (x: { runTimeNs: number; runCount: number }) => (x.runCount ? (x.runTimeNs / x.runCount).toFixed(0) : '-');
      console.log(`${a.hook.padEnd(12)} ${per(a).padStart(14)} ${per(b).padStart(13)} ${String(a.runCount).padStart(9)}`);
    }
    const row = (what: string, a: number, b: number, target: string) => console.log(`bpf-cost: ${what.padEnd(44)} stream ${a.toFixed(0).padStart(5)} ns   serve ${b.toFixed(0).padStart(5)} ns   ${target}`);
    row('per softirq (entry + exit)', stream.perSoftirq, serve.perSoftirq, '(serve target <= 100 ns)');
    row('per softirq with raise', stream.withRaise, serve.withRaise, '');
    row(`per packet, TCP load (${stream.tcp.packets} / ${serve.tcp.packets} packets)`, stream.tcp.ns, serve.tcp.ns, '(serve target <= 60 ns)');
    row(`per packet, ICMP flood (${stream.icmp.packets} / ${serve.icmp.packets})`, stream.icmp.ns, serve.icmp.ns, '(stream: each ICMP packet streamed for ping)');
    console.log(`bpf-cost: events streamed: stream ${stream.streamed}, serve ${serve.streamed}; drops: ${stream.drops}, ${serve.drops}`);
  } finally {
    fs.writeFileSync(STATS, before);
  }
}

main().catch((e) => {
  console.error(`bench:bpf-cost: ${e.message}`);
  process.exitCode = 1;
});
