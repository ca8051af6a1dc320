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
import { EXPORTER_NICE, restorePriority } from '../host/priority';
import { Exporter, ExporterSettings, Site } from '../serve/exporter';
import { handler, listen } from '../serve/http';
import { SyntheticLoad } from '../kernel/synthetic';
import { Aggregator } from '../stream/aggregate';
import { ATTACH_OPTION, CPUS_OPTION, onStopSignal, reportFromTrace, say, startTrace, tracingPreflight, VERSION, WAKEUP_MS_OPTION } from './common';
import { parseDurationMs, parseIntInRange, parseListen, parsePeers, parsePositiveMs, parseRate, parseOptionalMs } from '../base/options';
import { Mesh, MeshSettings } from '../serve/mesh';
import { MeshUdp } from '../serve/mesh-udp';
import type { MeshView } from '../diagnose/mesh';
import os from 'node:os';

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
  'node-name'?: string;
  mesh: boolean;
  peers?: string;
  'mesh-peers': string;
  'mesh-rate': string;
  'mesh-slow-ms': string;
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
    .option('node-name', { type: 'string', describe: "This node's name in /explain answers and the mesh (default: $NODE_NAME, else the host name)" })
    .option('mesh', {
      type: 'boolean',
      default: false,
      describe:
        "Probe a few peers (ICMP echo, needs CAP_NET_RAW; UDP to their serve's port, answered here on the --listen port too) and explain each slow probe by the node that held it (/mesh, jitterscope_mesh_*)",
    })
    .option('peers', { type: 'string', describe: "The mesh's candidates: dns:NAME (a headless Service, read every 30 s), or NODE=ADDRESS,... or ADDRESS,..." })
    .option('mesh-peers', { type: 'string', default: '10', describe: 'Peers probed, chosen by rendezvous hashing of node names (k of the candidates)' })
    .option('mesh-rate', { type: 'string', default: '10', describe: 'Probes a second to each peer, half ICMP and half UDP (1-100)' })
    .option('mesh-slow-ms', { type: 'string', default: '5', describe: 'A probe whose round trip takes this long is slow: asked about at the peer' })
    .example('$0 serve', 'metrics on http://127.0.0.1:9477/metrics until SIGTERM')
    .example('$0 serve --listen 0.0.0.0:9477 --per-cpu', 'scraped from elsewhere, with per-CPU series')
    .example(
      '$0 serve --listen 0.0.0.0:9477 --mesh --peers dns:jitterscope-peers',
      'each node probes 10 others; /mesh says which node held a slow probe',
    ) as unknown as Argv<ServeArgs>;
}

const SERVE_LISTED = 1000;

/** Whether node was started with a capped young generation (command line or NODE_OPTIONS). */
function semiSpaceCapped(): boolean {
  return [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => a.startsWith('--max-semi-space-size'));
}

/** --mesh and its options (null without it); peers must reach this serve, so a loopback --listen is refused. */
function parseMeshArgs(argv: ServeArgs, node: string, listen: { host: string; port: number }): MeshSettings | null {
  if (!argv.mesh) {
    if (argv.peers !== undefined) throw new UsageError('--peers: only with --mesh (serve --mesh --peers dns:NAME)');
    return null;
  }
  if (argv.peers === undefined) throw new UsageError('--mesh: say who the peers are: --peers dns:NAME (a headless Service) or --peers NODE=ADDRESS,...');
  if (/^(127\.|::1$|localhost$)/.test(listen.host))
    throw new UsageError(
      `--mesh: peers ask this serve about their probes, and --listen ${argv.listen} cannot be reached from them; listen on 0.0.0.0:${listen.port} or the node's address`,
    );
  return {
    node,
    peers: parsePeers(argv.peers),
    k: parseIntInRange(argv['mesh-peers'], '--mesh-peers', 1, 100),
    probesPerSecond: parseIntInRange(argv['mesh-rate'], '--mesh-rate', 1, 100),
    slowMs: parsePositiveMs(argv['mesh-slow-ms'], '--mesh-slow-ms'),
    port: listen.port,
  };
}

/** Every option, checked before anything binds or attaches. */
function parseServeArgs(argv: ServeArgs) {
  const packetMs = parsePositiveMs(argv['packet-ms'], '--packet-ms');
  const maxWindowMs = parseDurationMs(argv['report-window'], '--report-window');
  if (maxWindowMs > 3_600_000) throw new UsageError(`--report-window: '${argv['report-window']}' is longer than 1h`);
  const node = (argv['node-name'] ?? (process.env.NODE_NAME || os.hostname())).trim();
  if (!node || /\s/.test(node)) throw new UsageError(`--node-name: '${node}' is not a node name (no spaces)`);
  const exporter: Omit<ExporterSettings, 'version'> = {
    perCpu: argv['per-cpu'],
    topCallbacks: parseIntInRange(argv['top-callbacks'], '--top-callbacks', 1, 1000),
    maxWindowMs,
    maxWindowText: argv['report-window'],
    node,
  };
  const listen = parseListen(argv.listen);
  return {
    ...listen,
    mesh: parseMeshArgs(argv, node, listen),
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
  // the mesh's UDP responder on the same port, in its worker: bound before anything attaches
  let udp: MeshUdp | undefined;
  try {
    if (o.mesh) udp = await MeshUdp.start(o.host, o.port);
  } catch (e) {
    server.close();
    throw e;
  }

  let trace: ReturnType<typeof startTrace> | undefined;
  let exporter: Exporter | undefined;
  let synthetic: SyntheticLoad | undefined;
  let mesh: Mesh | undefined;
  const stop = onStopSignal();
  try {
    const live = (trace = startServeTrace(argv, o, cpus));
    // the yield reached the mesh's UDP worker too: it times round trips, and must not wait behind tasks for serve's nice
    restorePriority(udp?.tid);
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
          const report = reportFromTrace({ trace: live, aggregator: agg, start: from, possibleCpus: possible, tracedCpus: cpus, facts: recentHostFacts() });
          return mesh ? { ...report, mesh: mesh.view() } : report;
        },
      },
      { ...o.exporter, version: VERSION },
      start.monoNs,
    );
    if (o.mesh) {
      const ex = exporter;
      ex.responder = udp!;
      const m: Mesh = (mesh = new Mesh(o.mesh, {
        localWindow: () => {
          const w = ex.explainedWindow();
          return w && { packets: w.packets.slow, stalls: w.stalls, ownWakeups: w.ownWakeups };
        },
        sink: ex.meshSink((): MeshView => m.view()),
        udp: udp!,
      }));
      await m.start();
    }
    site.serve(exporter, mesh && (() => mesh!.view()));
    if (!semiSpaceCapped())
      say(
        'note: node runs without --max-semi-space-size=1: under a scrape a second its young generation grows to 2 x 16 MB (~12 MB more RSS); the image sets NODE_OPTIONS=--max-semi-space-size=1',
      );
    exporter.start();
    say(
      `serving http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}/metrics (and /report?window=60s, ${mesh ? '/mesh, ' : ''}/healthz); attached ${Math.round(process.uptime() * 1000)} ms after start; SIGTERM or Ctrl-C stops`,
    );
    if (mesh) {
      const v = mesh.view();
      say(
        `mesh: ${o.mesh!.node} probes ${v.peers.map((p) => `${p.name} (${p.address})`).join(', ') || 'no peer yet'} of ${v.candidates} candidates, ${o.mesh!.probesPerSecond}/s each`,
      );
      for (const n of v.notes) say(`note: ${n}`);
    }
    const sig = await stop.signalled;
    say(`stopping on ${sig}`);
  } finally {
    stop.dispose();
    mesh?.stop();
    site.stop();
    exporter?.stop();
    await synthetic?.stop();
    trace?.stop();
    await udp?.stop();
    server.closeAllConnections?.();
    await new Promise<void>((r) => server.close(() => r()));
  }
  say('detached');
}
