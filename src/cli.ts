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
    .demandCommand(1, 'name a command: record')
    .strict()
    .version(VERSION)
    .help()
    .alias('h', 'help')
    .alias('V', 'version')
    .wrap(Math.min(100, process.stdout.columns || 100))
    .fail((msg, err) => {
      if (err) throw err;
      throw new UsageError(`${msg} (see jitterscope --help)`);
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
