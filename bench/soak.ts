// npm run bench:soak — `serve` left running under load, /metrics scraped every
// second, for an hour by default. Samples the exporter's RSS every 5 s and
// prints the peak and the growth per hour (least-squares slope after a
// warm-up). Targets: RSS <= 80 MB, growth <= 5 MB an hour, at 200k events/s.
//
// --load udp (the default, serve's real case): kernel events. A UDP flood of
// small datagrams between two network namespaces (iperf3, two senders) makes
// every packet one look by serve's packet hook and a NET_RX softirq run; serve
// counts the runs in the kernel's histograms and streams only the long ones.
// The packets/s printed is the receiving veth's own counter; the events/s is
// what serve itself counted (softirq runs, timer callbacks and the packets of
// late NET_RX runs) from its /metrics. --pps sets the packet rate (default
// 100k: ~100k events/s; ~200k before serve stopped timing every packet).
//
// --load synthetic: generated events through a second ring and the streaming
// path (--rate, default 200k): the worst case, as if every run were long.
//
// `--perf=S` also samples serve with perf for S seconds after the warm-up (999
// Hz, on any CPU) and prints its CPU time per second from the samples: what
// it costs to keep on. `--cli=PATH` runs another build's cli.js (a before/after
// comparison in one harness).
//
// `--seconds=60` is the short version the tests run (test/kernel/19-serve);
// `--report-window=` is passed on to serve (what /report keeps grows until that
// window is full, so a short run uses a short window).
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { NetnsPair } from '../test/helpers';

export type SoakLoad = { kind: 'udp'; pps: number } | { kind: 'synthetic'; rate: string };

export interface SoakResult {
  seconds: number;
  load: SoakLoad;
  /** Kernel events serve counted per second (packets, softirq runs, timer callbacks), from its /metrics. */
  eventsPerSec: number;
  /** Packets per second serve counted. */
  packetsPerSec: number;
  samples: { t: number; rssMb: number; anonMb: number }[];
  peakMb: number;
  /** Peak of the private part of RSS (RssAnon): RSS less the node binary's and libraries' shared pages. */
  peakAnonMb: number;
  /** Least-squares growth after the warm-up, MB per hour. */
  slopeMbPerHour: number;
  /** Last minus first sample after the warm-up, MB. */
  growthMb: number;
  scrapes: number;
  stderr: string;
  /** With perf: serve's CPU milliseconds per second, from perf samples. */
  perf?: { samples: number; seconds: number; cpuMsPerSec: number };
}

export interface SoakOptions {
  /** Seconds of perf sampling after the warm-up (0: none). */
  perfSeconds?: number;
  /** The cli.js to run (default this build's). */
  cli?: string;
}

const PERF_HZ = 999;

/** perf record on `pid` for `seconds`; resolves to the number of samples it took. */
function perfSamples(pid: number, seconds: number): Promise<number> {
  const out = `/tmp/jitterscope-soak-${process.pid}.perf`;
  return new Promise((resolve, reject) => {
    const p = spawn('perf', ['record', '-q', '-F', String(PERF_HZ), '-p', String(pid), '-o', out, '--', 'sleep', String(seconds)], { stdio: 'ignore' });
    p.once('error', reject);
    p.once('close', (code) => {
      if (code !== 0) return reject(new Error(`perf record exited ${code}`));
      const script = spawnSync('perf', ['script', '-i', out, '-F', 'pid'], { encoding: 'utf8', maxBuffer: 1 << 28 });
      fs.rmSync(out, { force: true });
      resolve(script.stdout.split('\n').filter((l) => l.trim()).length);
    });
  });
}

const CLI = path.join(__dirname, '..', 'src', 'cli.js');
export const SERVE_NODE_FLAGS = ['--max-semi-space-size=1', '--max-old-space-size=96'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** VmRSS and RssAnon of a process, MB. */
function rssMb(pid: number): { rssMb: number; anonMb: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) / 1024;
  return { rssMb: kb('VmRSS'), anonMb: kb('RssAnon') };
}

/** A loopback port nothing listens on now. */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Why the UDP load cannot run here, or null. */
export function udpLoadMissing(): string | null {
  return spawnSync('iperf3', ['--version']).error ? 'iperf3 is not installed (apt-get install iperf3; npm test installs it)' : null;
}

/** Sums every sample of the named series in a Prometheus text scrape. */
function sumSeries(text: string, names: string[]): number {
  let total = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{[^}]*\})? (\S+)$/.exec(line);
    if (m && names.includes(m[1])) total += Number(m[2]);
  }
  return total;
}

const EVENT_SERIES = ['jitterscope_packet_wait_seconds_count', 'jitterscope_softirq_seconds_count', 'jitterscope_timer_callback_seconds_count'];

/** A UDP flood under way: its stop, and the packets the receiving veth has taken so far (its own counter, not serve's). */
interface Flood {
  stop: () => Promise<void>;
  received: () => number;
}

/**
 * A UDP flood from namespace a to namespace b: two iperf3 senders of 64-byte
 * datagrams at pps/2 each (iperf3 is single-threaded; one sender tops out
 * below 100k packets/s here). Returns a stop function.
 */
async function udpFlood(pps: number, seconds: number): Promise<Flood> {
  const net = new NetnsPair();
  const procs: ChildProcess[] = [];
  const stop = async () => {
    for (const p of procs) p.kill('SIGKILL');
    await Promise.all(procs.map((p) => (p.exitCode !== null || p.signalCode ? null : new Promise((r) => p.once('close', r)))));
    net.destroy();
  };
  try {
    const ports = [5301, 5302];
    for (const port of ports) procs.push(spawn('ip', net.exec(net.b, ['iperf3', '-s', '-1', '-p', String(port)]), { stdio: 'ignore' }));
    await sleep(500);
    const bitsPerSec = Math.round(((pps / ports.length) * 64 * 8) / 1000);
    for (const port of ports) {
      const c = spawn(
        'ip',
        net.exec(net.a, ['iperf3', '-c', net.addrB, '-p', String(port), '-u', '-l', '64', '-b', `${bitsPerSec}K`, '-t', String(seconds + 30)]),
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let err = '';
      c.stderr!.on('data', (d) => (err += d));
      c.once('close', (code) => code && !c.killed && process.stderr.write(`soak: iperf3 sender exited ${code}: ${err}\n`));
      procs.push(c);
    }
    // serve times only the packets of late NET_RX runs: the interface counts them all
    const received = () => Number(spawnSync('ip', net.exec(net.b, ['cat', '/sys/class/net/vb/statistics/rx_packets']), { encoding: 'utf8' }).stdout.trim());
    return { stop, received };
  } catch (e) {
    await stop();
    throw e;
  }
}

export async function soak(
  seconds: number,
  load: SoakLoad = { kind: 'udp', pps: 100_000 },
  warmupS = Math.min(60, seconds / 4),
  extra: string[] = [],
  opts: SoakOptions = {},
): Promise<SoakResult> {
  const port = await freePort();
  const loadArgs = load.kind === 'synthetic' ? ['--synthetic-rate', load.rate] : [];
  // as the image runs it (NODE_OPTIONS there): without it V8's young generation
  // grows to 2 x 16 MB under a scrape a second, ~12 MB more RSS
  const child = spawn(process.execPath, [...SERVE_NODE_FLAGS, opts.cli ?? CLI, 'serve', '--listen', `127.0.0.1:${port}`, ...loadArgs, ...extra], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let flood: Flood | undefined;
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.on('close', r));
  try {
    for (let i = 0; i < 100 && !/serving http/.test(stderr); i++) await sleep(200);
    if (!/serving http/.test(stderr)) throw new Error(`serve did not start: ${stderr}`);
    if (load.kind === 'udp') flood = await udpFlood(load.pps, seconds);
    const samples: { t: number; rssMb: number; anonMb: number }[] = [];
    let scrapes = 0;
    const t0 = Date.now();
    let nextSample = 0;
    let first: { t: number; events: number; packets: number } | undefined;
    let last = first;
    const perfS = opts.perfSeconds ?? 0;
    let perf: Promise<number> | undefined;
    while (Date.now() - t0 < seconds * 1000) {
      if (perfS && !perf && Date.now() - t0 >= warmupS * 1000) perf = perfSamples(child.pid!, Math.min(perfS, Math.max(1, seconds - warmupS - 2)));
      const r = await fetch(`http://127.0.0.1:${port}/metrics`);
      if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
      const text = await r.text();
      scrapes++;
      const now = { t: Date.now() / 1000, events: sumSeries(text, EVENT_SERIES), packets: flood?.received() ?? NaN };
      // counts start once the first interval is folded in: rates from the second scrape on
      if (scrapes === 2) first = now;
      last = now;
      const t = (Date.now() - t0) / 1000;
      if (t >= nextSample) {
        samples.push({ t, ...rssMb(child.pid!) });
        nextSample += 5;
      }
      await sleep(1000);
    }
    const after = samples.filter((s) => s.t >= warmupS);
    const n = after.length;
    const mt = after.reduce((a, s) => a + s.t, 0) / n;
    const mr = after.reduce((a, s) => a + s.rssMb, 0) / n;
    const slope = after.reduce((a, s) => a + (s.t - mt) * (s.rssMb - mr), 0) / after.reduce((a, s) => a + (s.t - mt) ** 2, 0);
    const span = first && last && last.t > first.t ? last.t - first.t : NaN;
    const perfSecs = Math.min(perfS, Math.max(1, seconds - warmupS - 2));
    const samplesTaken = perf ? await perf : 0;
    return {
      ...(perf ? { perf: { samples: samplesTaken, seconds: perfSecs, cpuMsPerSec: (samplesTaken / PERF_HZ / perfSecs) * 1000 } } : {}),
      seconds,
      load,
      eventsPerSec: first && last ? (last.events - first.events) / span : NaN,
      packetsPerSec: first && last ? (last.packets - first.packets) / span : NaN,
      samples,
      peakMb: Math.max(...samples.map((s) => s.rssMb)),
      peakAnonMb: Math.max(...samples.map((s) => s.anonMb)),
      slopeMbPerHour: slope * 3600,
      growthMb: after[n - 1].rssMb - after[0].rssMb,
      scrapes,
      stderr,
    };
  } finally {
    await flood?.stop();
    child.kill('SIGTERM');
    await exited;
  }
}

export function soakSummary(r: SoakResult): string {
  const what =
    r.load.kind === 'udp'
      ? `a UDP flood (${(r.packetsPerSec / 1000).toFixed(0)}k packets/s received; ${(r.eventsPerSec / 1000).toFixed(0)}k kernel events/s counted by serve)`
      : `${r.load.rate} synthetic events/s through the streaming path`;
  return (
    `soak: serve under ${what} for ${r.seconds} s, ${r.scrapes} scrapes, node ${process.version} ${SERVE_NODE_FLAGS.join(' ')}: RSS peak ${r.peakMb.toFixed(1)} MB (target <= 80; of it private ${r.peakAnonMb.toFixed(1)} MB, the rest the node binary's shared pages), ` +
    `growth after warm-up ${r.growthMb.toFixed(1)} MB, slope ${r.slopeMbPerHour.toFixed(1)} MB/h (target <= 5 MB in an hour)` +
    (r.perf ? `; CPU ${r.perf.cpuMsPerSec.toFixed(1)} ms per second (perf: ${r.perf.samples} samples at ${PERF_HZ} Hz over ${r.perf.seconds} s)` : '')
  );
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const arg = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
  const seconds = Number(arg('seconds') ?? 3600);
  const kind = arg('load') ?? 'udp';
  const window = arg('report-window');
  if (kind !== 'udp' && kind !== 'synthetic') {
    console.error(`bench:soak: --load=${kind}: use udp (kernel events, the default) or synthetic`);
    process.exit(2);
  }
  const missing = kind === 'udp' ? udpLoadMissing() : null;
  if (missing) {
    console.error(`bench:soak: ${missing}; or run --load=synthetic`);
    process.exit(2);
  }
  const load: SoakLoad = kind === 'udp' ? { kind, pps: Number(arg('pps') ?? 100_000) } : { kind, rate: arg('rate') ?? '200k' };
  const cli = arg('cli');
  soak(seconds, load, undefined, window ? ['--report-window', window] : [], {
    perfSeconds: Number(arg('perf') ?? 0),
    cli: cli ? path.resolve(cli) : undefined,
  }).then(
    (r) => {
      for (const s of r.samples) console.log(`  t=${s.t.toFixed(0)}s rss=${s.rssMb.toFixed(1)} MB anon=${s.anonMb.toFixed(1)} MB`);
      console.log(soakSummary(r));
    },
    (e) => {
      console.error(String(e));
      process.exitCode = 1;
    },
  );
}
