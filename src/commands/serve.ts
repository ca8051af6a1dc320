// `jitterscope serve`: the always-on exporter. Parses its options, binds its
// port first (a taken port or a bad --listen is one line, exit 2, nothing
// attached), then traces until SIGTERM or SIGINT while serve/exporter.ts folds
// every second into the metrics and keeps the last minutes for /report.
// Detaches on every way out.
import { recentHostFacts } from '../host/facts';
import http from 'node:http';
import type { Argv } from 'yargs';
import { clockPair, monotonicNs } from '../base/clock';
import { UsageError } from '../base/errors';
import { ipvsState } from '../host/ipvs';
import { EXPORTER_NICE } from '../host/priority';
import { Exporter, ExporterSettings, Site } from '../serve/exporter';
import { handler, listen } from '../serve/http';
import { SyntheticLoad } from '../kernel/synthetic';
import { Aggregator } from '../stream/aggregate';
import { ATTACH_OPTION, CPUS_OPTION, onStopSignal, reportFromTrace, say, startTrace, tracingPreflight, VERSION, WAKEUP_MS_OPTION } from './common';
import { parseDurationMs, parseIntInRange, parseListen, parsePositiveMs, parseRate, parseOptionalMs } from '../base/options';

export interface ServeArgs {
  listen: string;
  'per-cpu': boolean;
  'top-callbacks': string;
  'packet-ms': string;
  'wakeup-ms'?: string;
  'stall-ms': string;
  'report-window': string;
  attach: string;
  cpus?: string;
  'synthetic-rate'?: string;
}

export function serveOptions(y: Argv): Argv<ServeArgs> {
  return y
    .option('listen', { type: 'string', default: '127.0.0.1:9477', describe: 'Address and port to serve /metrics, /report and /healthz on' })
    .option('per-cpu', { type: 'boolean', default: false, describe: 'A cpu label on every histogram (many series on big nodes)' })
    .option('top-callbacks', { type: 'string', default: '20', describe: 'Timer callbacks with a series of their own; the rest are function="other"' })
    .option('packet-ms', { type: 'string', default: '1', describe: 'A packet that waited this long is slow: counted by culprit' })
    .option('wakeup-ms', WAKEUP_MS_OPTION)
    .option('stall-ms', { type: 'string', default: '1', describe: 'A softirq or timer run this long is a stall: counted by culprit' })
    .option('report-window', { type: 'string', default: '5m', describe: 'The longest /report?window= served (memory grows with it)' })
    .option('cpus', CPUS_OPTION)
    .option('attach', ATTACH_OPTION)
    .option('synthetic-rate', { type: 'string', describe: 'Test aid: mix this many synthetic events/s (e.g. 200k) into the metrics (bench:soak)' })
    .example('$0 serve', 'metrics on http://127.0.0.1:9477/metrics until SIGTERM')
    .example('$0 serve --listen 0.0.0.0:9477 --per-cpu', 'scraped from elsewhere, with per-CPU series') as unknown as Argv<ServeArgs>;
}

const SERVE_LISTED = 1000;

/** Whether node was started with a capped young generation (command line or NODE_OPTIONS). */
function semiSpaceCapped(): boolean {
  return [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => a.startsWith('--max-semi-space-size'));
}

/** Every option, checked before anything binds or attaches. */
function parseServeArgs(argv: ServeArgs) {
  const packetMs = parsePositiveMs(argv['packet-ms'], '--packet-ms');
  const maxWindowMs = parseDurationMs(argv['report-window'], '--report-window');
  if (maxWindowMs > 3_600_000) throw new UsageError(`--report-window: '${argv['report-window']}' is longer than 1h`);
  const exporter: Omit<ExporterSettings, 'version'> = {
    perCpu: argv['per-cpu'],
    topCallbacks: parseIntInRange(argv['top-callbacks'], '--top-callbacks', 1, 1000),
    maxWindowMs,
    maxWindowText: argv['report-window'],
  };
  return {
    ...parseListen(argv.listen),
    packetMs,
    wakeupMs: parseOptionalMs(argv['wakeup-ms'], '--wakeup-ms', packetMs),
    stallMs: parsePositiveMs(argv['stall-ms'], '--stall-ms'),
    syntheticRate: argv['synthetic-rate'] !== undefined ? parseRate(argv['synthetic-rate'], '--synthetic-rate', 1, 50e6) : 0,
    exporter,
  };
}

/**
 * Left on for days: the kernel counts the short softirq and net_rx_action
 * runs and streams only what could be a stall, plus slow packets and timer
 * callbacks; no ICMP listing, no time series. Little is streamed, so a small
 * ring does (it is resident memory).
 */
function startServeTrace(argv: ServeArgs, o: ReturnType<typeof parseServeArgs>, cpus: number[] | undefined) {
  return startTrace({
    attach: argv.attach,
    cpus,
    stallThresholdNs: o.stallMs * 1e6,
    slowPacketNs: o.packetMs * 1e6,
    slowWakeupNs: o.wakeupMs * 1e6,
    kernelHistsBelowNs: o.stallMs * 1e6,
    streamIcmp: false,
    lateRunPacketsOnly: true,
    // an agent must not keep an administrator (or kube-proxy changing mode) from unloading ip_vs
    holdModules: false,
    // below receive processing, yet answering scrapes on a busy node
    nice: EXPORTER_NICE,
    ringBytes: 1 << 20,
    // an interval lists (and attributes) at most this many slow packets and
    // stalls; the metrics count the rest as culprit="not_listed". Listing
    // every packet of a flood where all are slow cost ~30 MB of heap.
    maxPackets: SERVE_LISTED,
    maxStalls: SERVE_LISTED,
  });
}

export async function serve(argv: ServeArgs): Promise<void> {
  const o = parseServeArgs(argv);
  const { possible, cpus } = tracingPreflight(argv.cpus);
  const site = new Site();
  const server = http.createServer(handler(site));
  await listen(server, o.host, o.port);

  let trace: ReturnType<typeof startTrace> | undefined;
  let exporter: Exporter | undefined;
  let synthetic: SyntheticLoad | undefined;
  const stop = onStopSignal();
  try {
    const live = (trace = startServeTrace(argv, o, cpus));
    const session = live.session;
    // the first tick names callbacks: the index is built off the main loop meanwhile
    session.kallsyms?.buildInBackground();
    const start = clockPair();
    if (o.syntheticRate) {
      synthetic = new SyntheticLoad({ rate: o.syntheticRate, ringBytes: 2 << 20 }, (buf, count) => live.aggregator.consume(buf, count));
      live.addSource(synthetic);
      say(`note: synthetic load of ${o.syntheticRate} events/s mixed into the metrics (--synthetic-rate)`);
    }
    exporter = new Exporter(
      {
        rotate: () => live.rotate(),
        drops: () => live.drops(),
        probes: () => session.probes,
        kallsyms: session.kallsyms,
        ipvs: () => ipvsState(session.kallsyms),
        reportOf: (agg: Aggregator, fromNs: number) => {
          const wall = new Date(Date.now() - (monotonicNs() - fromNs) / 1e6);
          const from = { monoNs: fromNs, wall, realtimeOffsetNs: start.realtimeOffsetNs };
          return reportFromTrace({ trace: live, aggregator: agg, start: from, possibleCpus: possible, tracedCpus: cpus, facts: recentHostFacts() });
        },
      },
      { ...o.exporter, version: VERSION },
      start.monoNs,
    );
    site.serve(exporter);
    if (!semiSpaceCapped())
      say(
        'note: node runs without --max-semi-space-size=1: under a scrape a second its young generation grows to 2 x 16 MB (~12 MB more RSS); the image sets NODE_OPTIONS=--max-semi-space-size=1',
      );
    exporter.start();
    say(
      `serving http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}/metrics (and /report?window=60s, /healthz); attached ${Math.round(process.uptime() * 1000)} ms after start; SIGTERM or Ctrl-C stops`,
    );
    const sig = await stop.signalled;
    say(`stopping on ${sig}`);
  } finally {
    stop.dispose();
    site.stop();
    exporter?.stop();
    await synthetic?.stop();
    trace?.stop();
    server.closeAllConnections?.();
    await new Promise<void>((r) => server.close(() => r()));
  }
  say('detached');
}
