// `jitterscope record`: trace headless for a while, then write the report
// (JSON or text). Ctrl-C stops early and still writes what was traced.
import type { Argv } from 'yargs';
import { clockPair } from '../base/clock';
import { UsageError } from '../base/errors';
import { renderHtml } from '../report/html';
import { lossText, renderText } from '../report/text';
import { checkWritable, writeAtomic } from '../report/write';
import { ATTACH_OPTION, CPUS_OPTION, exitOnSecondSignal, onStopSignal, say, startTrace, reportFromTrace, tracingPreflight, WAKEUP_MS_OPTION } from './common';
import { parseDurationMs, parseIntInRange, parsePositiveMs, parseOptionalMs } from '../base/options';

export interface RecordArgs {
  attach: string;
  duration: string;
  out?: string;
  format: string;
  cpus?: string;
  'ring-mb': string;
  'stall-ms': string;
  'packet-ms': string;
  'wakeup-ms'?: string;
  'max-packets': string;
  interval: string;
}

export function recordOptions(y: Argv): Argv<RecordArgs> {
  return y
    .option('duration', { alias: 'd', type: 'string', default: '10s', describe: 'How long to trace (10s, 500ms, 2m)' })
    .option('out', { alias: 'o', type: 'string', describe: 'Write the report to this file (atomically) instead of stdout' })
    .option('format', {
      alias: 'f',
      choices: ['json', 'text', 'html'],
      default: 'json',
      describe: 'json: jitterscope.report/v2; text: verdict and histograms; html: a page with plots (needs --out)',
    })
    .option('interval', {
      type: 'string',
      default: '1s',
      describe: 'Time series step in the report (per CPU: NET_RX wait, softirq time, longest callback, slow packets)',
    })
    .option('cpus', CPUS_OPTION)
    .option('ring-mb', { type: 'string', default: '4', describe: 'Ring buffer size in MiB (power of two); raise it if drops are reported' })
    .option('stall-ms', { type: 'string', default: '1', describe: 'Keep softirq and timer runs at least this long as stalls' })
    .option('max-packets', {
      type: 'string',
      default: '10000',
      describe: 'Keep at most this many ICMP packets, and slow packets, in the report (0: none; those not kept are counted)',
    })
    .option('packet-ms', { type: 'string', default: '1', describe: 'A packet that waited this long or longer is slow: kept with its flow and explained' })
    .option('wakeup-ms', WAKEUP_MS_OPTION)
    .option('attach', ATTACH_OPTION)
    .example('$0 record --duration 30s --out report.json', 'trace 30 s into report.json')
    .example('$0 record -d 10s -f text --cpus 1', 'print histograms for CPU 1')
    .example('$0 record -d 60s -f html -o spikes.html', 'a page with the verdict, heat map and timeline') as unknown as Argv<RecordArgs>;
}

export async function record(argv: RecordArgs): Promise<void> {
  const durationMs = parseDurationMs(argv.duration);
  const ringMb = parseIntInRange(argv['ring-mb'], '--ring-mb', 1, 1024);
  if (ringMb & (ringMb - 1)) throw new UsageError(`--ring-mb: ${ringMb} is not a power of two (1, 2, 4, ... 1024)`);
  const stallMs = parsePositiveMs(argv['stall-ms'], '--stall-ms');
  const packetMs = parsePositiveMs(argv['packet-ms'], '--packet-ms');
  const wakeupMs = parseOptionalMs(argv['wakeup-ms'], '--wakeup-ms', packetMs);
  const maxPackets = parseIntInRange(argv['max-packets'], '--max-packets', 0, 10_000_000);
  const intervalMs = parseDurationMs(argv.interval, '--interval');
  if (intervalMs < 10) throw new UsageError(`--interval: '${argv.interval}' is shorter than 10ms`);
  if (argv.format === 'html' && !argv.out) throw new UsageError('--format html needs --out FILE.html');
  if (argv.out) checkWritable(argv.out);
  const { possible, cpus } = tracingPreflight(argv.cpus);

  const trace = startTrace({
    attach: argv.attach,
    cpus,
    ringBytes: ringMb << 20,
    stallThresholdNs: stallMs * 1e6,
    slowPacketNs: packetMs * 1e6,
    slowWakeupNs: wakeupMs * 1e6,
    maxPackets,
    seriesIntervalNs: intervalMs * 1e6,
  });
  const start = clockPair();
  const stop = onStopSignal();
  let stopReason = '';
  try {
    say(
      `tracing for ${(durationMs / 1000).toFixed(1)} s, attached ${Math.round(process.uptime() * 1000)} ms after start (Ctrl-C stops early and keeps what was traced)`,
    );
    let timer: NodeJS.Timeout | undefined;
    const signal = await Promise.race([stop.signalled, new Promise<null>((r) => (timer = setTimeout(() => r(null), durationMs)))]);
    clearTimeout(timer);
    if (signal) stopReason = `stopped early by ${signal}`;
    stop.dispose();
    exitOnSecondSignal(() => trace.stop());
  } finally {
    stop.dispose();
    trace.stop();
  }
  const report = reportFromTrace({ trace, start, extraNotes: stopReason ? [stopReason] : [], possibleCpus: possible, tracedCpus: cpus });
  const text = argv.format === 'text' ? renderText(report) : argv.format === 'html' ? renderHtml(report) : JSON.stringify(report, null, 1) + '\n';
  if (argv.out) writeAtomic(argv.out, text);
  else process.stdout.write(text);
  // the end-of-run line: what was written and everything lost on the way
  say(`${argv.out ? `wrote ${argv.out}` : 'traced'} (${report.meta.events.total} events; ${lossText(report.meta.drops)})`);
  if (stopReason) say(stopReason);
}
