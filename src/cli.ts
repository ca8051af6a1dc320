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
  const end = new Date();
  const notes = [...session.notes];
  if (stopReason) notes.push(stopReason);
  const drops = session.drops();
  const report = buildReport({
    aggregator: session.aggregator,
    probes: session.probes,
    notes,
    drops,
    kallsyms: session.kallsyms,
    startWall: start.wall,
    endWall: end,
    startMonoNs: start.monoNs,
    realtimeOffsetNs: start.offsetNs,
    possibleCpus: possible,
    tracedCpus: cpus,
    command: process.argv.slice(1),
    version: VERSION,
  });
  const text = argv.format === 'text' ? renderText(report) : JSON.stringify(report, null, 1) + '\n';
  if (argv.out) {
    writeAtomic(argv.out, text);
    say(`wrote ${argv.out} (${report.meta.events.total} events, ${drops.total} drops)`);
  } else process.stdout.write(text);
  if (stopReason) say(stopReason);
  if (drops.total) say(`warning: ${drops.total} events were dropped because the ring buffer was full; raise --ring-mb`);
}

interface TopArgs {
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

  const session = TraceSession.start({ cpus, stallThresholdNs: stallMs * 1e6, maxPackets: 1000 });
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
          .option('synthetic-rate', {
            type: 'string',
            describe: 'Test aid: mix this many synthetic events/s (e.g. 1M) into the display to check it keeps up',
          })
          .example('$0 top', 'live dashboard; q quits, ? shows the keys')
          .example('$0 top -b -n 5 -d 2s', 'five plain-text summaries, two seconds apart'),
      async (argv) => top(argv),
    )
    .demandCommand(1, 'name a command: record or top')
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
