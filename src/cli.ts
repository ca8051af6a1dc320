// jitterscope command line (yargs). Validates everything before touching the
// kernel; every exit path detaches the probes.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { requireTracingCaps } from './caps';
import { BpfError, EnvironmentError, UsageError } from './errors';
import { native } from './native';
import { parseCpuList, parseDurationMs, parseIntInRange } from './parse';
import { buildReport, checkWritable, renderText, writeAtomic } from './report';
import { TraceSession } from './tracer';
import { SyntheticLoad } from './synthetic';
import { Collector, WindowName, WINDOWS } from './top/collector';
import { batchBlock } from './top/batch';
import dns from 'node:dns/promises';
import fs from 'node:fs';
import { LabStall } from './lab';
import { formatCpuMask, interfaceExists, rpsFile, rpsQueues } from './net';
import { PingParams, pingSection, runPing, slowRepliesText } from './ping';
import { doctorText, runDoctor } from './doctor';
import { ATTACH_PREFS, AttachPref } from './ladder';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const VERSION: string = require('../../package.json').version;

function say(line: string): void {
  process.stderr.write(`jitterscope: ${line}\n`);
}

/** Samples CLOCK_MONOTONIC (what bpf_ktime_get_ns reads) against wall time. */
function clockPair(): { wall: Date; monoNs: number; offsetNs: number } {
  const monoNs = Number(process.hrtime.bigint());
  const wall = new Date();
  return { wall, monoNs, offsetNs: wall.getTime() * 1e6 - monoNs };
}

interface RecordArgs {
  attach: string;
  duration: string;
  out?: string;
  format: string;
  cpus?: string;
  'ring-mb': string;
  'stall-ms': string;
  'max-packets': string;
}

async function record(argv: RecordArgs): Promise<void> {
  const durationMs = parseDurationMs(argv.duration);
  const ringMb = parseIntInRange(argv['ring-mb'], '--ring-mb', 1, 1024);
  if (ringMb & (ringMb - 1)) throw new UsageError(`--ring-mb: ${ringMb} is not a power of two (1, 2, 4, ... 1024)`);
  const stallMs = Number(argv['stall-ms']);
  if (!(stallMs > 0) || stallMs > 60_000) throw new UsageError(`--stall-ms: '${argv['stall-ms']}' must be a number of milliseconds above 0`);
  const maxPackets = parseIntInRange(argv['max-packets'], '--max-packets', 0, 10_000_000);
  if (argv.out) checkWritable(argv.out);
  requireTracingCaps();
  const possible = native().numPossibleCpus;
  const cpus = argv.cpus !== undefined ? parseCpuList(argv.cpus, possible) : undefined;

  const session = TraceSession.start({
    attach: argv.attach as AttachPref,
    cpus,
    ringBytes: ringMb << 20,
    stallThresholdNs: stallMs * 1e6,
    maxPackets,
  });
  const start = clockPair();
  let stopReason = '';
  try {
    for (const n of session.notes) say(`note: ${n}`);
    for (const [name, p] of Object.entries(session.probes))
      if (!p.active) say(`probe ${name} inactive: ${p.reason}`);
    const attachedMs = Math.round(process.uptime() * 1000);
    say(`tracing for ${(durationMs / 1000).toFixed(1)} s, attached ${attachedMs} ms after start (Ctrl-C stops early and keeps what was traced)`);

    stopReason = await new Promise<string>((resolve) => {
      const timer = setTimeout(() => finish(''), durationMs);
      const onSignal = (sig: NodeJS.Signals) => finish(`stopped early by ${sig}`);
      function finish(reason: string) {
        clearTimeout(timer);
        for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeListener(s, onSignal);
        // a second signal while the report is being written ends at once
        for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
          process.once(s, () => {
            session.stop();
            process.exit(130);
          });
        resolve(reason);
      }
      for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, onSignal);
    });
  } finally {
    session.stop();
  }
  const notes = [...session.notes];
  if (stopReason) notes.push(stopReason);
  const drops = session.drops();
  const report = buildSessionReport(session, start, notes, cpus, possible);
  const text = argv.format === 'text' ? renderText(report) : JSON.stringify(report, null, 1) + '\n';
  if (argv.out) {
    writeAtomic(argv.out, text);
    say(`wrote ${argv.out} (${report.meta.events.total} events, ${drops.total} drops)`);
  } else process.stdout.write(text);
  if (stopReason) say(stopReason);
  if (drops.total) say(`warning: ${drops.total} events were dropped because the ring buffer was full; raise --ring-mb`);
}

interface PingArgs {
  attach: string;
  target: string;
  count: string;
  interval: string;
  size: string;
  interface?: string;
  'slow-ms': string;
  out?: string;
  format: string;
  cpus?: string;
}

async function resolveIPv4(target: string): Promise<string> {
  if (/^\d+\.\d+\.\d+\.\d+$/.test(target)) return target;
  try {
    return (await dns.lookup(target, { family: 4 })).address;
  } catch (e) {
    throw new UsageError(`ping ${target}: cannot resolve it to an IPv4 address (${(e as NodeJS.ErrnoException).code ?? e}); give a host name or address`);
  }
}

async function ping(argv: PingArgs): Promise<void> {
  const count = parseIntInRange(argv.count, '--count', 1, 1_000_000);
  const intervalMs = Number(argv.interval);
  if (!Number.isFinite(intervalMs) || intervalMs < 1 || intervalMs > 60_000)
    throw new UsageError(`--interval: '${argv.interval}' must be 1 to 60000 milliseconds`);
  const sizeBytes = parseIntInRange(argv.size, '--size', 0, 65_507);
  const slowMs = Number(argv['slow-ms']);
  if (!(slowMs > 0) || slowMs > 60_000) throw new UsageError(`--slow-ms: '${argv['slow-ms']}' must be a number of milliseconds above 0`);
  if (argv.interface !== undefined && !interfaceExists(argv.interface))
    throw new UsageError(`--interface: no interface '${argv.interface}' in this network namespace (see ip link)`);
  if (argv.out) checkWritable(argv.out);
  const address = await resolveIPv4(argv.target);
  requireTracingCaps();
  const possible = native().numPossibleCpus;
  const cpus = argv.cpus !== undefined ? parseCpuList(argv.cpus, possible) : undefined;
  const params: PingParams = {
    address,
    id: (process.pid & 0xffff) || 1,
    count,
    intervalMs,
    sizeBytes,
    iface: argv.interface,
    timeoutS: Math.max(1, Math.ceil((slowMs * 10) / 1000)),
  };

  // runs at least a third of --slow-ms are kept, so shorter culprits still show
  const session = TraceSession.start({ attach: argv.attach as AttachPref, cpus, stallThresholdNs: Math.min(1e6, (slowMs * 1e6) / 3), maxPackets: 100_000 });
  const start = clockPair();
  const stop = onStopSignal();
  const abort = new AbortController();
  let stopReason = '';
  let run: import('./ping').PingRun;
  try {
    for (const n of session.notes) say(`note: ${n}`);
    for (const [name, p] of Object.entries(session.probes)) if (!p.active) say(`probe ${name} inactive: ${p.reason}`);
    say(`pinging ${argv.target} (${address}) ${count} times every ${intervalMs} ms, id ${params.id}; slow means >= ${slowMs} ms`);
    stop.signalled.then((sig) => {
      stopReason = `stopped early by ${sig}`;
      abort.abort();
    });
    run = await runPing(params, abort.signal);
    if (run.exitCode !== 0 && run.exitCode !== 1 && !stopReason)
      throw new EnvironmentError(`ping failed (exit ${run.exitCode}): ${run.stderr.split('\n')[0] || 'no output'}`);
    await new Promise((r) => setTimeout(r, 100)); // the last reply's events reach the ring
  } finally {
    stop.dispose();
    session.stop();
  }
  const notes = [...session.notes, ...(stopReason ? [stopReason] : [])];
  const report = buildSessionReport(session, start, notes, cpus, possible);
  report.ping = pingSection(report, argv.target, params, run, slowMs);
  if (argv.out) {
    writeAtomic(argv.out, JSON.stringify(report, null, 1) + '\n');
    say(`wrote ${argv.out}`);
  }
  if (argv.format === 'json' && !argv.out) process.stdout.write(JSON.stringify(report, null, 1) + '\n');
  else {
    const slow = slowRepliesText(report.ping);
    process.stdout.write(`${slow ? slow + '\n\n' : ''}${report.ping.verdict.text}\n`);
  }
  if (session.drops().total) say(`warning: ${session.drops().total} events were dropped; attribution may miss some`);
}

interface LabArgs {
  cpu: string;
  'stall-ms': string;
  'period-ms': string;
  rps?: string[];
  duration?: string;
}

async function lab(argv: LabArgs): Promise<void> {
  const possible = native().numPossibleCpus;
  const cpu = parseIntInRange(argv.cpu, '--cpu', 0, possible - 1);
  const stallMs = Number(argv['stall-ms']);
  const periodMs = Number(argv['period-ms']);
  if (!(stallMs >= 0.1 && stallMs <= 100)) throw new UsageError(`--stall-ms: '${argv['stall-ms']}' must be 0.1 to 100 ms`);
  if (!(periodMs >= 10 && periodMs <= 600_000)) throw new UsageError(`--period-ms: '${argv['period-ms']}' must be 10 to 600000 ms`);
  if (stallMs >= periodMs) throw new UsageError('--stall-ms must be shorter than --period-ms');
  const durationMs = argv.duration !== undefined ? parseDurationMs(argv.duration) : Infinity;
  const steer: { dev: string; cpus: number[] }[] = [];
  for (const spec of argv.rps ?? []) {
    const [dev, list] = spec.split(':');
    if (!interfaceExists(dev)) throw new UsageError(`--rps: no interface '${dev}' in this network namespace (see ip link)`);
    if (!rpsQueues(dev).length) throw new UsageError(`--rps: ${dev} has no receive queues with RPS`);
    steer.push({ dev, cpus: list ? parseCpuList(list, possible, '--rps') : [cpu] });
  }
  requireTracingCaps();

  const saved: { file: string; value: string }[] = [];
  const restore = () => {
    for (const s of saved.splice(0).reverse()) {
      try {
        fs.writeFileSync(s.file, s.value);
      } catch (e) {
        say(`warning: could not restore ${s.file} to ${s.value}: ${(e as Error).message}`);
      }
    }
  };
  let stall: LabStall | undefined;
  const stop = onStopSignal();
  try {
    for (const { dev, cpus } of steer)
      for (const q of rpsQueues(dev)) {
        const file = rpsFile(dev, q.queue);
        saved.push({ file, value: fs.readFileSync(file, 'utf8').trim() });
        fs.writeFileSync(file, formatCpuMask(cpus));
        say(`rps: ${dev} ${q.queue} -> CPU ${cpus.join(',')} (was ${q.cpus.length ? 'CPU ' + q.cpus.join(',') : 'off'})`);
      }
    stall = new LabStall({ cpu, stallMs, periodMs });
    say(`lab: stalling CPU ${cpu} for ${stallMs} ms every ${periodMs} ms in HRTIMER softirq (bpf_timer_cb); Ctrl-C stops and restores`);
    // a signal handler alone does not keep Node's loop alive: this timer does
    let timer: NodeJS.Timeout | undefined;
    const reason = await Promise.race([
      stop.signalled,
      new Promise<string>((r) => {
        const end = Date.now() + durationMs;
        timer = setInterval(() => Date.now() >= end && r('duration'), Math.min(1000, durationMs));
      }),
    ]);
    clearInterval(timer);
    const st = stall.stats();
    say(`lab: stopped (${reason}) after ${st.runs} stalls, longest ${(st.maxNs / 1e6).toFixed(2)} ms${st.otherCpuRuns ? `, ${st.otherCpuRuns} ran off CPU ${cpu}` : ''}`);
  } finally {
    stop.dispose();
    stall?.stop();
    restore();
  }
}

function buildSessionReport(
  session: TraceSession,
  start: { wall: Date; monoNs: number; offsetNs: number },
  notes: string[],
  cpus: number[] | undefined,
  possible: number,
) {
  return buildReport({
    aggregator: session.aggregator,
    probes: session.probes,
    notes,
    drops: session.drops(),
    kallsyms: session.kallsyms,
    startWall: start.wall,
    endWall: new Date(),
    startMonoNs: start.monoNs,
    realtimeOffsetNs: start.offsetNs,
    possibleCpus: possible,
    tracedCpus: cpus,
    command: process.argv.slice(1),
    version: VERSION,
  });
}

interface TopArgs {
  attach: string;
  delay: string;
  once: boolean;
  batch: boolean;
  iterations?: string;
  window: string;
  cpus?: string;
  'stall-ms': string;
  'synthetic-rate'?: string;
}

const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Resolves on the first stop signal (with its name); `dispose` removes the handlers. */
function onStopSignal(): { signalled: Promise<string>; dispose: () => void } {
  let handler: (s: NodeJS.Signals) => void = () => undefined;
  const signalled = new Promise<string>((resolve) => {
    handler = (s) => resolve(s);
    for (const s of STOP_SIGNALS) process.on(s, handler);
  });
  return { signalled, dispose: () => STOP_SIGNALS.forEach((s) => process.removeListener(s, handler)) };
}

async function top(argv: TopArgs): Promise<void> {
  const delayMs = parseDurationMs(argv.delay, '--delay');
  if (delayMs < 100) throw new UsageError(`--delay: '${argv.delay}' is too short; use 100ms or more`);
  const iterations = argv.once ? 1 : argv.iterations !== undefined ? parseIntInRange(argv.iterations, '--iterations', 1, 1e9) : Infinity;
  const stallMs = Number(argv['stall-ms']);
  if (!(stallMs > 0) || stallMs > 60_000) throw new UsageError(`--stall-ms: '${argv['stall-ms']}' must be a number of milliseconds above 0`);
  let syntheticRate = 0;
  if (argv['synthetic-rate'] !== undefined) {
    const m = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(argv['synthetic-rate']);
    if (!m) throw new UsageError(`--synthetic-rate: '${argv['synthetic-rate']}' is not a rate; use e.g. 1M or 250k`);
    syntheticRate = parseFloat(m[1]) * ({ k: 1e3, m: 1e6 }[m[2].toLowerCase() as 'k' | 'm'] ?? 1);
    if (syntheticRate < 1 || syntheticRate > 50e6) throw new UsageError('--synthetic-rate: use 1 to 50M events/s');
  }
  requireTracingCaps();
  const possible = native().numPossibleCpus;
  const cpus = argv.cpus !== undefined ? parseCpuList(argv.cpus, possible) : undefined;
  const tty = Boolean(process.stdout.isTTY) && !argv.batch && !argv.once && argv.iterations === undefined;

  const session = TraceSession.start({ attach: argv.attach as AttachPref, cpus, stallThresholdNs: stallMs * 1e6, maxPackets: 1000 });
  let synthetic: SyntheticLoad | undefined;
  const stop = onStopSignal();
  try {
    if (syntheticRate) {
      synthetic = new SyntheticLoad({ rate: syntheticRate, ringBytes: 16 << 20 }, (buf, count) => session.aggregator.consume(buf, count));
      say(`note: synthetic load of ${syntheticRate} events/s mixed into the display (--synthetic-rate)`);
    }
    const collector = new Collector(session, {
      version: VERSION,
      command: process.argv.slice(1),
      possibleCpus: possible,
      tracedCpus: cpus,
      extraDrops: () => synthetic?.drops() ?? 0,
    });
    if (tty) await runDashboard(collector, cpus?.length ?? possible, delayMs, argv.window as WindowName, stop.signalled);
    else {
      for (const n of session.notes) say(`note: ${n}`);
      for (const [name, p] of Object.entries(session.probes)) if (!p.active) say(`probe ${name} inactive: ${p.reason}`);
      await runBatch(collector, delayMs, iterations, argv.window as WindowName, stop.signalled);
    }
  } finally {
    stop.dispose();
    await synthetic?.stop();
    session.stop();
  }
}

async function runBatch(c: Collector, delayMs: number, iterations: number, window: WindowName, signalled: Promise<string>) {
  let stopped = false;
  signalled.then(() => (stopped = true));
  let lastStallNs = 0;
  let pipeClosed = false;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') pipeClosed = true;
  });
  const start = Date.now();
  for (let i = 0; i < iterations && !stopped && !pipeClosed; i++) {
    // deadlines from the start, so the time a block takes does not drift the clock
    const wait = Math.max(0, start + (i + 1) * delayMs - Date.now());
    await Promise.race([new Promise((r) => setTimeout(r, wait)), signalled]);
    c.tick();
    const snap = c.snapshot(window);
    process.stdout.write(batchBlock(snap, lastStallNs));
    for (const x of snap.report.stalls.rows) if (x.startNs > lastStallNs) lastStallNs = x.startNs;
  }
}

async function runDashboard(c: Collector, cpus: number, delayMs: number, window: WindowName, signalled: Promise<string>) {
  const { Dashboard } = await import('./top/dashboard');
  await new Promise<void>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const dash = new Dashboard({
      quit: () => {
        clearInterval(timer);
        dash.destroy();
        resolve();
      },
      reset: () => c.reset(),
      windowChanged: (w) => {
        const paused = dash.paused;
        dash.paused = false;
        dash.update(c.snapshot(w));
        dash.paused = paused;
      },
    }, cpus);
    dash.window = window;
    dash.draw();
    signalled.then(() => {
      clearInterval(timer);
      dash.destroy();
      resolve();
    });
    // the one render clock: close an interval, snapshot, draw
    timer = setInterval(() => {
      c.tick();
      dash.update(c.snapshot(dash.window));
    }, delayMs);
  });
}

const ATTACH_OPTION = {
  choices: [...ATTACH_PREFS],
  default: 'auto',
  describe: 'Hook for ipvs_estimation, net_rx_action and icmp_rcv: the best the kernel has, or force one',
} as const;

export async function main(args: string[]): Promise<number> {
  let code = 0;
  const parser = yargs(args)
    .scriptName('jitterscope')
    .usage('$0 <command> [options]\n\nFind the cause of network latency spikes on this node (eBPF).')
    .command<RecordArgs>(
      'record',
      'Trace softirqs, timer callbacks and ICMP packets, then write a histogram report',
      (y) =>
        y
          .option('duration', { alias: 'd', type: 'string', default: '10s', describe: 'How long to trace (10s, 500ms, 2m)' })
          .option('out', { alias: 'o', type: 'string', describe: 'Write the report to this file (atomically) instead of stdout' })
          .option('format', { alias: 'f', choices: ['json', 'text'], default: 'json', describe: 'json: jitterscope.report/v1; text: histograms' })
          .option('cpus', { type: 'string', describe: 'Trace only these CPUs, e.g. 0,2-3 (default: all)' })
          .option('ring-mb', { type: 'string', default: '8', describe: 'Ring buffer size in MiB (power of two)' })
          .option('stall-ms', { type: 'string', default: '1', describe: 'Keep softirq and timer runs at least this long as stalls' })
          .option('max-packets', { type: 'string', default: '10000', describe: 'Keep at most this many ICMP packets in the report' })
          .option('attach', ATTACH_OPTION)
          .example('$0 record --duration 30s --out report.json', 'trace 30 s into report.json')
          .example('$0 record -d 10s -f text --cpus 1', 'print histograms for CPU 1'),
      async (argv) => record(argv),
    )
    .command<TopArgs>(
      'top',
      'Live per-CPU dashboard (plain text each interval when not on a terminal)',
      (y) =>
        y
          .option('delay', { alias: 'd', type: 'string', default: '1s', describe: 'Refresh every (1s, 500ms, ...)' })
          .option('window', { choices: [...WINDOWS], default: '1s', describe: 'Initial window: last 1 s, last 10 s, since start (key w)' })
          .option('once', { type: 'boolean', default: false, describe: 'Trace one interval, print the summary, exit' })
          .option('iterations', { alias: 'n', type: 'string', describe: 'Print this many intervals, then exit (plain text)' })
          .option('batch', { alias: 'b', type: 'boolean', default: false, describe: 'Plain text each interval even on a terminal' })
          .option('cpus', { type: 'string', describe: 'Trace only these CPUs, e.g. 0,2-3 (default: all)' })
          .option('stall-ms', { type: 'string', default: '1', describe: 'List softirq and timer runs at least this long as stalls' })
          .option('attach', ATTACH_OPTION)
          .option('synthetic-rate', {
            type: 'string',
            describe: 'Test aid: mix this many synthetic events/s (e.g. 1M) into the display to check it keeps up',
          })
          .example('$0 top', 'live dashboard; q quits, ? shows the keys')
          .example('$0 top -b -n 5 -d 2s', 'five plain-text summaries, two seconds apart'),
      async (argv) => top(argv),
    )
    .command<PingArgs>(
      'ping <target>',
      'Ping while tracing; name the CPU and the callback behind every slow reply',
      (y) =>
        y
          .positional('target', { type: 'string', describe: 'Host name or IPv4 address', demandOption: true })
          .option('count', { alias: 'c', type: 'string', default: '100', describe: 'Echo requests to send' })
          .option('interval', { alias: 'i', type: 'string', default: '50', describe: 'Milliseconds between requests' })
          .option('size', { alias: 's', type: 'string', default: '56', describe: 'Payload bytes' })
          .option('interface', { alias: 'I', type: 'string', describe: 'Send from this interface' })
          .option('slow-ms', { type: 'string', default: '3', describe: 'A reply this slow or slower is explained' })
          .option('out', { alias: 'o', type: 'string', describe: 'Also write the report (with one row per reply) here' })
          .option('format', { alias: 'f', choices: ['text', 'json'], default: 'text', describe: 'text: verdict; json: the report' })
          .option('cpus', { type: 'string', describe: 'Trace only these CPUs (default: all)' })
          .option('attach', ATTACH_OPTION)
          .example('$0 ping 10.0.0.7 -c 600 -i 100', 'a minute of pings, then the verdict'),
      async (argv) => ping(argv),
    )
    .command<LabArgs>(
      'lab',
      'Reproduction aid: stall one CPU in softirq context on a timer, optionally steering RPS to it',
      (y) =>
        y
          .option('cpu', { type: 'string', default: '1', describe: 'CPU to stall' })
          .option('stall-ms', { type: 'string', default: '15', describe: 'Length of each stall' })
          .option('period-ms', { type: 'string', default: '200', describe: 'Time between stalls' })
          .option('rps', { type: 'string', array: true, describe: 'DEV or DEV:CPUS: steer DEV\'s receive queues to the stalled CPU (or CPUS) while running' })
          .option('duration', { alias: 'd', type: 'string', describe: 'Stop after this long (default: until Ctrl-C)' })
          .example('$0 lab --cpu 1 --rps lo', 'stall CPU 1 and steer loopback to it; try ping 127.0.0.1'),
      async (argv) => lab(argv),
    )
    .command<{ json: boolean }>(
      'doctor',
      'What this kernel supports, which hook each probe will use, IPVS and RPS state, advice',
      (y) => y.option('json', { type: 'boolean', default: false, describe: 'Print jitterscope.doctor/v1 JSON' }),
      async (argv) => {
        requireTracingCaps();
        const d = runDoctor(native().numPossibleCpus);
        process.stdout.write(argv.json ? JSON.stringify(d, null, 1) + '\n' : doctorText(d));
      },
    )
    .demandCommand(1, 'name a command: top, record, ping, lab or doctor')
    .strict()
    .version(VERSION)
    .help()
    .alias('h', 'help')
    .alias('V', 'version')
    .wrap(Math.min(100, process.stdout.columns || 100))
    .fail((msg, err) => {
      if (err) throw err;
      throw new UsageError(`${msg.replace(/\s*\n\s*/g, ' ')} (see jitterscope --help)`);
    });
  try {
    await parser.parseAsync();
  } catch (e) {
    code = reportError(e);
  }
  return code;
}

function reportError(e: unknown): number {
  if (e instanceof UsageError || e instanceof EnvironmentError) {
    say(e.message);
    return 2;
  }
  if (e instanceof BpfError) {
    say(e.message);
    const last = e.detail.trim().split('\n').filter(Boolean).slice(-3);
    for (const l of last) process.stderr.write(`  libbpf: ${l}\n`);
    if (e.code === 'EPERM' || e.code === 'EACCES')
      process.stderr.write('  the kernel refused: check capabilities, kernel lockdown and kernel.unprivileged_bpf_disabled\n');
    return 1;
  }
  say(e instanceof Error ? e.message : String(e));
  return 1;
}

/** Runs with this process's arguments and sets the exit code. */
export function run(): void {
  main(hideBin(process.argv)).then((code) => {
    process.exitCode = code;
  });
}

if (require.main === module) run();
