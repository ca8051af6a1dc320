// npm run bench:bpf-cost — kernel run time of the tracer's BPF programs, from
// kernel.bpf_stats_enabled (restored after): per softirq (entry + exit) and per
// received packet (every packet hook summed: arrival + processing; serve has
// no arrival hook, only a processing hook that leaves at once outside a late
// NET_RX run), under a TCP
// load and under an ICMP flood, both on loopback. Two modes attached at once,
// side by side: streaming (record, top, ping: every run through the ring) and
// serve (short runs counted in the kernel's histograms, only the long ones
// streamed). Beside them, in the same run on the same hooks, what any tracer
// pays on this machine: programs that do nothing (bpf_stats' own clock reads
// and the call), and the least that times each softirq and packet exactly (a
// clock read at each end and one slot; bpf/bench_gen.bpf.c). Medians over
// short slices, since this VM's host pauses it.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { NativeBpfObject } from '../src/kernel/addon';
import { loadObject } from '../src/kernel/loader';
import { LiveTrace } from '../src/stream/live';

const STATS = '/proc/sys/kernel/bpf_stats_enabled';
const PACKET_HOOKS = ['rx_arrive', 'gro_arrive', 'rcv_arrive', 'skb_rcv', 'skb_late'];

type Stats = { hook: string; runTimeNs: number; runCount: number }[];

function diff(after: Stats, before: Stats): Stats {
  return after.map((a) => {
    const b = before.find((x) => x.hook === a.hook)!;
    return { hook: a.hook, runTimeNs: a.runTimeNs - b.runTimeNs, runCount: a.runCount - b.runCount };
  });
}

function perPacket(s: Stats): { ns: number; packets: number } {
  // one processing hook runs per packet: skb_rcv (streaming) or skb_late (serve)
  const packets = Math.max(...['skb_rcv', 'skb_late'].map((h) => s.find((x) => x.hook === h)!.runCount));
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

/** The client of echoLoad, run in its own process: one 64-byte request at a time until `ms` ends. */
const ECHO_CLIENT = `
const net = require('node:net');
const [port, ms] = process.argv.slice(1).map(Number);
const end = Date.now() + ms;
const s = net.connect(port, '127.0.0.1', () => { s.setNoDelay(true); s.write(Buffer.alloc(64)); });
let got = 0;
s.on('data', (d) => { got += d.length; if (got < 64) return; got -= 64; if (Date.now() < end) s.write(Buffer.alloc(64)); else s.end(); });
`;

/**
 * Requests and replies over loopback TCP between this process and a client
 * for \`ms\`: each side sleeps until the other's data arrives, so each data-ready
 * wakes its reader (the data-ready hook's quiet path: the socket is kept for
 * the wake-up that follows, and nothing is looked up).
 */
async function echoLoad(ms: number): Promise<void> {
  const server = net.createServer((s) => s.on('data', (d) => s.write(d)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const client = spawn(process.execPath, ['-e', ECHO_CLIENT, String(port), String(ms)], { stdio: 'ignore' });
  const code = await new Promise((r) => client.on('close', r));
  server.close();
  if (code !== 0) throw new Error(`the echo client exited with ${code}`);
}

/**
 * Two processes passing a byte back and forth over pipes for `ms`: wake-ups and
 * context switches that no receive processing made, none pending a network wake-up.
 */
async function pipeLoad(ms: number): Promise<void> {
  const script = `const end = Date.now() + ${ms};
    process.stdin.on('data', (d) => { if (Date.now() > end) process.exit(0); process.stdout.write(d); });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'ignore'] });
  child.stdout!.on('data', (d) => child.stdin!.write(d));
  child.stdin!.on('error', () => undefined);
  child.stdin!.write('x');
  await new Promise((r) => child.on('close', r));
}

async function icmpFlood(count: number): Promise<void> {
  const flood = spawn('ping', ['-f', '-q', '-c', String(count), '127.0.0.1'], { stdio: 'ignore' });
  const code = await new Promise((r) => flood.on('close', r));
  if (code !== 0) throw new Error(`ping -f exited with ${code}`);
}

interface Slice {
  perSoftirq: number;
  withRaise: number;
  perPacket: number;
  perWaking: number;
  perSwitch: number;
  /** sock:sk_data_ready (a wake-up's socket), where it is the hook */
  perReady: number;
}

/** The floor programs' figures over one slice: the do-nothing pair and the least exact timer. */
interface Floor {
  emptySoftirq: number;
  leastSoftirq: number;
  emptyPacket: number;
  /** One do-nothing program on the processing tracepoint alone: what serve's packet hook is held to. */
  emptySingle: number;
  leastPacket: number;
  /** A do-nothing program on sched_waking, and on sched_switch. */
  emptyWaking: number;
  emptySwitch: number;
  /** The least a switch hook can do: one per-CPU word read. */
  leastSwitch: number;
  /** A switch hook that reads two fields of each task switched, and no map. */
  taskSwitch: number;
  /** A switch hook that reads its own arguments and nothing else. */
  argsSwitch: number;
  /** A do-nothing program on sock:sk_data_ready. */
  emptyReady: number;
}

/** Attached first and not measured: the first program on a tracepoint pays more than the rest. */
const WARM_PROGRAMS = ['empty_sched_waking', 'empty_sched_switch'];

const FLOOR_PROGRAMS = [
  'empty_sirq_entry',
  'empty_sirq_exit',
  'empty_rx_arrive',
  'empty_skb_rcv',
  'empty_sched_waking',
  'empty_sched_switch',
  'floor_sirq_entry',
  'floor_sirq_exit',
  'floor_rx_arrive',
  'floor_skb_rcv',
  'floor_sched_switch',
  'empty_sk_ready',
];

/** Summed over both copies: equal run counts, so per run it is their mean. */
function floorStats(copies: NativeBpfObject[]): Stats {
  return FLOOR_PROGRAMS.map((hook) => {
    const infos = copies.map((o) => o.programInfo(hook));
    return { hook, runTimeNs: infos.reduce((a, i) => a + i.runTimeNs, 0), runCount: infos.reduce((a, i) => a + i.runCount, 0) };
  });
}

function floorSlice(d: Stats): Floor {
  const get = (h: string) => d.find((s) => s.hook === h)!;
  const per = (h: string) => get(h).runTimeNs / Math.max(1, get(h).runCount);
  // per packet: both hooks' time over the packets processed (one processing run each)
  const packets = Math.max(1, get('empty_skb_rcv').runCount);
  return {
    emptySoftirq: per('empty_sirq_entry') + per('empty_sirq_exit'),
    leastSoftirq: (get('floor_sirq_entry').runTimeNs + get('floor_sirq_exit').runTimeNs) / Math.max(1, get('floor_sirq_exit').runCount),
    emptyPacket: (get('empty_rx_arrive').runTimeNs + get('empty_skb_rcv').runTimeNs) / packets,
    emptySingle: get('empty_skb_rcv').runTimeNs / packets,
    leastPacket: (get('floor_rx_arrive').runTimeNs + get('floor_skb_rcv').runTimeNs) / Math.max(1, get('floor_skb_rcv').runCount),
    emptyWaking: per('empty_sched_waking'),
    emptySwitch: per('empty_sched_switch'),
    leastSwitch: per('floor_sched_switch'),
    emptyReady: per('empty_sk_ready'),
    // timed under the pipe load alone (pipeFloors)
    taskSwitch: 0,
    argsSwitch: 0,
  };
}

function slice(d: Stats): Slice {
  const get = (h: string) => d.find((s) => s.hook === h)!;
  const runs = Math.max(1, get('sirq_exit').runCount);
  const perSoftirq = (get('sirq_entry').runTimeNs + get('sirq_exit').runTimeNs) / runs;
  const per = (h: string) => get(h).runTimeNs / Math.max(1, get(h).runCount);
  return {
    perSoftirq,
    withRaise: perSoftirq + get('sirq_raise').runTimeNs / runs,
    perPacket: perPacket(d).ns,
    perWaking: per('sched_waking'),
    perSwitch: per('sched_switch'),
    perReady: per('sk_ready'),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const SLICES = 15;
/** Fresh loads of each mode for the pipe figures. */
const PIPE_LOADS = 3;

/**
 * Both modes and the floor programs attached at once, so they time the very
 * same softirqs and packets; the load runs in short slices and each figure is
 * the median over slices: a host pause lands in one slice's mean, not in the
 * median.
 */
async function sliced(
  traces: LiveTrace[],
  load: () => Promise<void>,
  floor: NativeBpfObject[],
): Promise<{ slices: Slice[][]; floors: Floor[]; totals: Stats[] }> {
  const slices: Slice[][] = traces.map(() => []);
  const floors: Floor[] = [];
  const first = traces.map((t) => t.session.programStats());
  for (let i = 0; i < SLICES; i++) {
    const before = traces.map((t) => t.session.programStats());
    const f0 = floorStats(floor);
    await load();
    await new Promise((r) => setTimeout(r, 50));
    traces.forEach((t, k) => slices[k].push(slice(diff(t.session.programStats(), before[k]))));
    floors.push(floorSlice(diff(floorStats(floor), f0)));
  }
  return { slices, floors, totals: traces.map((t, k) => diff(t.session.programStats(), first[k])) };
}

/** Each program's cost per run in each of SLICES pipe slices, attached alone (after the warm-up hook). */
async function alone(programs: string[]): Promise<number[][]> {
  const o = loadObject({
    object: 'bench_gen',
    autoload: (p) => programs.includes(p),
    maxEntries: { events: 1 << 16 },
    start: (x) => programs.forEach((p) => x.attach(p)),
  });
  try {
    const per: number[][] = programs.map(() => []);
    for (let i = 0; i < SLICES; i++) {
      const before = programs.map((p) => o.programInfo(p));
      await pipeLoad(300);
      programs.forEach((p, k) => {
        const a = o.programInfo(p);
        per[k].push((a.runTimeNs - before[k].runTimeNs) / Math.max(1, a.runCount - before[k].runCount));
      });
    }
    return per;
  } finally {
    o.close();
  }
}

/** The switch and wake-up floor under the pipe load, one program set at a time. */
async function pipeFloors(): Promise<Floor[]> {
  const [waking, empty] = await alone(['empty_sched_waking', 'empty_sched_switch']);
  const [least] = await alone(['floor_sched_switch']);
  const [task] = await alone(['floor_task_switch']);
  const [args] = await alone(['floor_args_switch']);
  const none = { emptySoftirq: 0, leastSoftirq: 0, emptyPacket: 0, emptySingle: 0, leastPacket: 0, emptyReady: 0 };
  return empty.map((_, i) => ({ ...none, emptyWaking: waking[i], emptySwitch: empty[i], leastSwitch: least[i], taskSwitch: task[i], argsSwitch: args[i] }));
}

async function main() {
  const before = fs.readFileSync(STATS, 'utf8').trim();
  fs.writeFileSync(STATS, '1');
  let stream: LiveTrace | undefined;
  let serve: LiveTrace | undefined;
  let warm: NativeBpfObject | undefined;
  const floor: NativeBpfObject[] = [];
  const loadFloor = () =>
    floor.push(
      loadObject({
        object: 'bench_gen',
        autoload: (p) => FLOOR_PROGRAMS.includes(p),
        maxEntries: { events: 1 << 16 },
        start: (o) => FLOOR_PROGRAMS.forEach((p) => o.attach(p)),
      }),
    );
  try {
    // Programs on one tracepoint run in the order they were attached, and where
    // one runs changes what it costs (measured on the switch: a do-nothing hook
    // costs 70 ns first, 27 ns last). So the floor is loaded twice, before and
    // after both tracers, and its figures are the mean of the two copies.
    loadFloor();
    // record/top/ping stream every run; serve counts short runs in the kernel
    const serveSettings = { kernelHistsBelowNs: 1e6, streamIcmp: false, lateRunPacketsOnly: true, ringBytes: 1 << 20 };
    stream = LiveTrace.start({});
    serve = LiveTrace.start(serveSettings);
    loadFloor();
    // a fallback changes what is measured: say it (the tracer's notes name any)
    for (const [mode, t] of [
      ['stream', stream],
      ['serve', serve],
    ] as const)
      for (const n of t.session.notes) console.log(`note (${mode}): ${n}`);
    const tcp = await sliced([stream, serve], () => tcpLoad(300), floor);
    const icmp = await sliced([stream, serve], () => icmpFlood(1000), floor);
    const echo = await sliced([stream, serve], () => echoLoad(300), floor);
    // what the two modes streamed and dropped, before the pipes take one away at a time
    stream.session.drain();
    serve.session.drain();
    const streamed =
      `bpf-cost: events streamed: stream ${stream.session.streamedEvents()}, serve ${serve.session.streamedEvents()}; ` +
      `drops: ${stream.session.drops().total}, ${serve.session.drops().total}`;
    // The switch and wake-up targets are timed with one tracer at a time: a
    // node runs one, and of two on the same hooks the second measured 10-15 ns
    // dearer a switch, in either order. Where a program runs among those on
    // its tracepoint moves its cost too (a do-nothing switch hook: ~75 ns
    // alone, ~46 after another), so each one measured here runs alone, second
    // after a do-nothing warm-up hook: the tracer, then each floor program. And
    // each mode is loaded afresh PIPE_LOADS times: where the kernel places a
    // program and its state moves its switch cost from one load to the next.
    serve.stop();
    serve = undefined;
    stream.stop();
    stream = undefined;
    while (floor.length) floor.pop()!.close();
    warm = loadObject({
      object: 'bench_gen',
      autoload: (p) => WARM_PROGRAMS.includes(p),
      maxEntries: { events: 1 << 16 },
      start: (o) => WARM_PROGRAMS.forEach((p) => o.attach(p)),
    });
    const loads: { mode: 'stream' | 'serve'; slices: Slice[]; floors: Floor[] }[] = [];
    for (let k = 0; k < PIPE_LOADS; k++) {
      const floors = await pipeFloors();
      for (const [mode, settings] of [
        ['stream', {}],
        ['serve', serveSettings],
      ] as const) {
        const t = LiveTrace.start(settings);
        try {
          const r = await sliced([t], () => pipeLoad(300), []);
          loads.push({ mode, slices: r.slices[0], floors });
        } finally {
          t.stop();
        }
      }
    }
    const ofMode = (mode: string) => loads.filter((l) => l.mode === mode);
    const pipes = {
      slices: [ofMode('stream').flatMap((l) => l.slices), ofMode('serve').flatMap((l) => l.slices)],
      floors: loads.flatMap((l) => l.floors),
    };
    /** serve's figure over the floor's, in each load */
    const perLoad = (pick: (s: Slice) => number, floorPick: (f: Floor) => number) =>
      ofMode('serve').map((l) => median(l.slices.map(pick)) - median(l.floors.map(floorPick)));
    console.log(
      `${'hook'.padEnd(12)} ${'stream ns/run'.padStart(14)} ${'serve ns/run'.padStart(13)} ${'runs'.padStart(9)}   (means over the TCP load, host pauses included)`,
    );
    const [a, b] = tcp.totals;
    for (const x of a) {
      const y = b.find((z) => z.hook === x.hook)!;
      if (!x.runCount && !y.runCount) continue;
      const per = (z: { runTimeNs: number; runCount: number }) => (z.runCount ? (z.runTimeNs / z.runCount).toFixed(0) : '-');
      console.log(`${x.hook.padEnd(12)} ${per(x).padStart(14)} ${per(y).padStart(13)} ${String(x.runCount).padStart(9)}`);
    }
    const row = (what: string, pick: (s: Slice) => number, from: { slices: Slice[][] }, target: string) => {
      const [m, n] = from.slices.map((ss) => ss.map(pick));
      console.log(
        `bpf-cost: ${what.padEnd(30)} stream ${median(m).toFixed(0).padStart(5)} ns (min ${Math.min(...m).toFixed(0)})   ` +
          `serve ${median(n).toFixed(0).padStart(5)} ns (min ${Math.min(...n).toFixed(0)})   ${target}`,
      );
    };
    console.log(
      `bpf-cost: medians over ${SLICES} slices of each load; both modes attached at once, but one at a time for the pipes, each loaded ${PIPE_LOADS} times (serve's verdicts: the median load)`,
    );
    const floorRow = (what: string, pick: (f: Floor) => number, from: { floors: Floor[] }) => {
      const m = from.floors.map(pick);
      console.log(`bpf-cost: ${what.padEnd(30)} ${median(m).toFixed(0).padStart(5)} ns (min ${Math.min(...m).toFixed(0)})`);
    };
    row('per softirq (entry + exit)', (s) => s.perSoftirq, tcp, '(serve target <= least exact timer + 40 ns)');
    row('per softirq with raise', (s) => s.withRaise, tcp, '');
    floorRow('  any pair that does nothing', (f) => f.emptySoftirq, tcp);
    floorRow('  least exact timer of a run', (f) => f.leastSoftirq, tcp);
    row('per packet, TCP load', (s) => s.perPacket, tcp, '(serve <= one do-nothing hook + 15 ns; stream <= least exact timer + 30 ns)');
    floorRow('  any pair that does nothing', (f) => f.emptyPacket, tcp);
    floorRow('  one hook that does nothing', (f) => f.emptySingle, tcp);
    floorRow('  least exact timer of a wait', (f) => f.leastPacket, tcp);
    row('per packet, ICMP flood', (s) => s.perPacket, icmp, '(stream: every ICMP packet streamed for ping)');
    floorRow('  least exact timer of a wait', (f) => f.leastPacket, icmp);
    row('per wake-up, pipe ping-pong', (s) => s.perWaking, pipes, '(none in a NET_RX run: <= one do-nothing hook + 10 ns)');
    floorRow('  one hook that does nothing', (f) => f.emptyWaking, pipes);
    row('per switch, pipe ping-pong', (s) => s.perSwitch, pipes, '(no network wake-up pending: <= one do-nothing hook + 15 ns)');
    floorRow('  one hook that does nothing', (f) => f.emptySwitch, pipes);
    floorRow('  least per-CPU check', (f) => f.leastSwitch, pipes);
    floorRow('  a read of the two tasks', (f) => f.taskSwitch, pipes);
    floorRow('  a read of its arguments', (f) => f.argsSwitch, pipes);
    row('per wake-up, TCP load', (s) => s.perWaking, tcp, '(some in NET_RX runs: those are recorded)');
    row('per switch, TCP load', (s) => s.perSwitch, tcp, '(some with a network wake-up pending: those look it up)');
    row('per data-ready, TCP load', (s) => s.perReady, tcp, "(the reader is the writer, awake: each looks up the task its socket's data last woke)");
    floorRow('  one hook that does nothing', (f) => f.emptyReady, tcp);
    row('per data-ready, request/reply', (s) => s.perReady, echo, '(each wakes its reader: keeps the socket for the wake-up that follows)');
    floorRow('  one hook that does nothing', (f) => f.emptyReady, echo);
    const least = median(tcp.floors.map((f) => f.leastSoftirq));
    const serveSoftirq = median(tcp.slices[1].map((s) => s.perSoftirq));
    const leastPacket = median(tcp.floors.map((f) => f.leastPacket));
    const single = median(tcp.floors.map((f) => f.emptySingle));
    const servePacket = median(tcp.slices[1].map((s) => s.perPacket));
    const streamPacket = median(tcp.slices[0].map((s) => s.perPacket));
    const verdict = (over: number, allowed: number) =>
      `${over >= 0 ? '+' : ''}${over.toFixed(0)} ns (target +${allowed}: ${over <= allowed ? 'met' : 'NOT met'})`;
    console.log(`bpf-cost: serve per softirq vs the least exact timer: ${verdict(serveSoftirq - least, 40)}`);
    console.log(`bpf-cost: serve per packet (not in a late run) vs one do-nothing hook: ${verdict(servePacket - single, 15)}`);
    console.log(`bpf-cost: stream per packet vs the least exact timer of a wait: ${verdict(streamPacket - leastPacket, 30)}`);
    const readyOver = median(echo.slices[0].map((s) => s.perReady)) - median(echo.floors.map((f) => f.emptyReady));
    console.log(`bpf-cost: per data-ready that wakes its reader (nothing waiting) vs one do-nothing hook: ${verdict(readyOver, 10)}`);
    const signed = (n: number) => `${n >= 0 ? '+' : ''}${n.toFixed(0)}`;
    const loadsText = (xs: number[]) => `; ${PIPE_LOADS} loads: ${xs.map(signed).join(', ')} ns`;
    const wakingOver = perLoad(
      (s) => s.perWaking,
      (f) => f.emptyWaking,
    );
    const switchOver = perLoad(
      (s) => s.perSwitch,
      (f) => f.emptySwitch,
    );
    const overLeast = perLoad(
      (s) => s.perSwitch,
      (f) => f.leastSwitch,
    );
    const emptySwitch = median(pipes.floors.map((f) => f.emptySwitch));
    const leastOver = median(pipes.floors.map((f) => f.leastSwitch)) - emptySwitch;
    const taskOver = median(pipes.floors.map((f) => f.taskSwitch)) - emptySwitch;
    const argsOver = median(pipes.floors.map((f) => f.argsSwitch)) - emptySwitch;
    console.log(`bpf-cost: per wake-up not made in a NET_RX run vs one do-nothing hook: ${verdict(median(wakingOver), 10)}${loadsText(wakingOver)}`);
    console.log(`bpf-cost: per switch with no network wake-up pending vs one do-nothing hook: ${verdict(median(switchOver), 15)}${loadsText(switchOver)}`);
    console.log(
      `bpf-cost: per switch with no network wake-up pending vs the least per-CPU check: ${signed(median(overLeast))} ns${loadsText(overLeast)} ` +
        `(what any hook that reads this CPU's state pays, beyond a do-nothing one: ${signed(leastOver)} ns)`,
    );
    console.log(
      `bpf-cost: a switch hook that reads only the two tasks vs one do-nothing hook: ${signed(taskOver)} ns; ` +
        `one that reads only its arguments: ${signed(argsOver)} ns (what any switch hook that decides anything pays)`,
    );
    console.log(
      `bpf-cost: (a do-nothing program costs ${median(tcp.floors.map((f) => f.emptySoftirq / 2)).toFixed(0)} ns a run here: bpf_stats' clock reads and the call)`,
    );
    console.log(streamed);
  } finally {
    serve?.stop();
    stream?.stop();
    floor.forEach((o) => o.close());
    warm?.close();
    fs.writeFileSync(STATS, before);
  }
}

main().catch((e) => {
  console.error(`bench:bpf-cost: ${e.message}`);
  process.exitCode = 1;
});
