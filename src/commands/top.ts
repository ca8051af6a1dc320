// `jitterscope top`: the live per-CPU dashboard, or plain text each interval
// when not on a terminal (like `top -b`).
import { recentHostFacts } from '../host/facts';
import type { Argv } from 'yargs';
import { UsageError } from '../base/errors';
import { SyntheticLoad } from '../kernel/synthetic';
import { Collector, WindowName, WINDOWS } from '../top/collector';
import { runDashboard, runPlain } from '../top/loop';
import { ATTACH_OPTION, CPUS_OPTION, onStopSignal, say, startTrace, tracingPreflight, WAKEUP_MS_OPTION } from './common';
import { parseDurationMs, parseIntInRange, parsePositiveMs, parseRate, parseOptionalMs } from '../base/options';

export interface TopArgs {
  attach: string;
  delay: string;
  once: boolean;
  batch: boolean;
  iterations?: string;
  window: string;
  cpus?: string;
  'stall-ms': string;
  'packet-ms': string;
  'wakeup-ms'?: string;
  'synthetic-rate'?: string;
}

export function topOptions(y: Argv): Argv<TopArgs> {
  return y
    .option('delay', { alias: 'd', type: 'string', default: '1s', describe: 'Refresh every (1s, 500ms, ...)' })
    .option('window', { choices: [...WINDOWS], default: '1s', describe: 'Initial window: last 1 s, last 10 s, since start (key w)' })
    .option('once', { type: 'boolean', default: false, describe: 'Trace one interval, print the summary, exit' })
    .option('iterations', { alias: 'n', type: 'string', describe: 'Print this many intervals, then exit (plain text)' })
    .option('batch', { alias: 'b', type: 'boolean', default: false, describe: 'Plain text each interval even on a terminal' })
    .option('cpus', CPUS_OPTION)
    .option('stall-ms', { type: 'string', default: '1', describe: 'List softirq and timer runs at least this long as stalls' })
    .option('packet-ms', { type: 'string', default: '1', describe: 'A packet that waited this long or longer is slow: kept with its flow and explained' })
    .option('wakeup-ms', WAKEUP_MS_OPTION)
    .option('attach', ATTACH_OPTION)
    .option('synthetic-rate', {
      type: 'string',
      describe: 'Test aid: mix this many synthetic events/s (e.g. 1M) into the display to check it keeps up',
    })
    .example('$0 top', 'live dashboard; q quits, ? shows the keys')
    .example('$0 top -b -n 5 -d 2s', 'five plain-text summaries, two seconds apart') as unknown as Argv<TopArgs>;
}

export async function top(argv: TopArgs): Promise<void> {
  const delayMs = parseDurationMs(argv.delay, '--delay');
  if (delayMs < 100) throw new UsageError(`--delay: '${argv.delay}' is too short; use 100ms or more`);
  const iterations = argv.once ? 1 : argv.iterations !== undefined ? parseIntInRange(argv.iterations, '--iterations', 1, 1e9) : Infinity;
  const stallMs = parsePositiveMs(argv['stall-ms'], '--stall-ms');
  const packetMs = parsePositiveMs(argv['packet-ms'], '--packet-ms');
  const wakeupMs = parseOptionalMs(argv['wakeup-ms'], '--wakeup-ms', packetMs);
  const syntheticRate = argv['synthetic-rate'] !== undefined ? parseRate(argv['synthetic-rate'], '--synthetic-rate', 1, 50e6) : 0;
  const { possible, cpus } = tracingPreflight(argv.cpus);
  const tty = Boolean(process.stdout.isTTY) && !argv.batch && !argv.once && argv.iterations === undefined;

  // on the dashboard, notes and inactive probes show in its header instead
  // left open for hours: no probe holds ip_vs loaded (holdModules)
  const trace = startTrace(
    {
      attach: argv.attach,
      cpus,
      stallThresholdNs: stallMs * 1e6,
      slowPacketNs: packetMs * 1e6,
      slowWakeupNs: wakeupMs * 1e6,
      maxPackets: 1000,
      seriesIntervalNs: 1e9,
      holdModules: false,
    },
    tty,
  );
  // the first refresh names callbacks: the index is built off the main loop meanwhile
  trace.session.kallsyms?.buildInBackground();
  let synthetic: SyntheticLoad | undefined;
  const stop = onStopSignal();
  try {
    if (syntheticRate) {
      synthetic = new SyntheticLoad({ rate: syntheticRate, ringBytes: 16 << 20 }, (buf, count) => trace.aggregator.consume(buf, count));
      trace.addSource(synthetic);
      say(`note: synthetic load of ${syntheticRate} events/s mixed into the display (--synthetic-rate)`);
    }
    const collector = new Collector(trace, { facts: recentHostFacts });
    const window = argv.window as WindowName;
    if (tty) await runDashboard(collector, cpus?.length ?? possible, delayMs, window, stop.signalled);
    else await runPlain(collector, delayMs, iterations, window, stop.signalled);
  } finally {
    stop.dispose();
    await synthetic?.stop();
    trace.stop();
  }
}
