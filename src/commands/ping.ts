// `jitterscope ping`: ping while tracing, tie every reply to its ICMP events
// and to what its CPU was running, and sum it up in a verdict. A ping report
// is the base report plus a `ping` section.
import net from 'node:net';
import type { Argv } from 'yargs';
import { clockPair } from '../base/clock';
import { EnvironmentError, UsageError } from '../base/errors';
import { fmtNs } from '../base/format';
import type { HostFacts } from '../base/host-facts';
import { gatherHostFacts } from '../host/facts';
import { resolvePingTarget } from '../host/target';
import { attributeReplies } from '../diagnose/ping';
import { pingVerdictOf } from '../diagnose/ping';
import { PingReport, PingSection, Report } from '../report/model';
import { lossText } from '../report/text';
import { checkWritable, writeAtomic } from '../report/write';
import { ATTACH_OPTION, onStopSignal, say, startTrace, reportFromTrace, tracingPreflight } from './common';
import { PingParams, PingRun, runPing } from '../host/iputils';
import { parseHttpUrl, parseIntInRange, parseMsInRange, parsePositiveMs } from '../base/options';
import { peerSectionText } from '../report/text';
import { askPeer } from '../serve/peer';

/** A peer's serve closes an interval a second: a request is listed there after the next. */
const PEER_INTERVAL_MS = 1200;

export interface PingArgs {
  attach: string;
  target: string;
  count: string;
  interval: string;
  size: string;
  interface?: string;
  '4'?: boolean;
  '6'?: boolean;
  'slow-ms': string;
  'explain-from'?: string;
  out?: string;
  format: string;
  cpus?: string;
}

export function pingOptions(y: Argv): Argv<PingArgs> {
  return y
    .positional('target', { type: 'string', describe: 'Host name, IPv4 or IPv6 address', demandOption: true })
    .option('count', { alias: 'c', type: 'string', default: '100', describe: 'Echo requests to send' })
    .option('interval', { alias: 'i', type: 'string', default: '50', describe: 'Milliseconds between requests' })
    .option('size', { alias: 's', type: 'string', default: '56', describe: 'Payload bytes' })
    .option('interface', { alias: 'I', type: 'string', describe: 'Send from this interface' })
    .option('4', { type: 'boolean', describe: 'IPv4 only (a name must have an IPv4 address)' })
    .option('6', { type: 'boolean', describe: 'IPv6 only (a name must have an IPv6 address)' })
    .conflicts('4', '6')
    .option('slow-ms', { type: 'string', default: '3', describe: 'A reply this slow or slower is explained' })
    .option('explain-from', {
      type: 'string',
      describe: "The target's jitterscope serve (http://HOST:PORT): ask it what held each slow echo request there, and show it beside this node's answer",
    })
    .option('out', { alias: 'o', type: 'string', describe: 'Also write the report (with one row per reply) here' })
    .option('format', { alias: 'f', choices: ['text', 'json'], default: 'text', describe: 'text: verdict; json: the report' })
    .option('cpus', { type: 'string', describe: 'Trace only these CPUs (default: all)' })
    .option('attach', ATTACH_OPTION)
    .example('$0 ping 10.0.0.7 -c 600 -i 100', 'a minute of pings, then the verdict')
    .example('$0 ping 10.0.0.7 --explain-from http://10.0.0.7:9477', 'each slow reply explained by both ends') as unknown as Argv<PingArgs>;
}

export async function ping(argv: PingArgs): Promise<void> {
  const count = parseIntInRange(argv.count, '--count', 1, 1_000_000);
  const intervalMs = parseMsInRange(argv.interval, '--interval', 1, 60_000);
  const sizeBytes = parseIntInRange(argv.size, '--size', 0, 65_507);
  const slowMs = parsePositiveMs(argv['slow-ms'], '--slow-ms');
  const explainFrom = argv['explain-from'] === undefined ? null : parseHttpUrl(argv['explain-from'], '--explain-from');
  if (argv.out) checkWritable(argv.out);
  const { address, family } = await resolvePingTarget(argv.target, { family: argv['6'] ? 6 : argv['4'] ? 4 : undefined, iface: argv.interface });
  // the peer answers about the probes from the address the question comes from: the same family, at least
  const peerFamily = explainFrom ? net.isIP(explainFrom.hostname.replace(/^\[|\]$/g, '')) : 0;
  if (peerFamily && peerFamily !== family)
    throw new UsageError(
      `--explain-from ${explainFrom!.href}: an IPv${peerFamily} address, but the echo requests go over IPv${family}; the peer answers only about probes from the address that asks (use its IPv${family} address)`,
    );
  const { possible, cpus } = tracingPreflight(argv.cpus);
  const params: PingParams = {
    address,
    id: process.pid & 0xffff || 1,
    count,
    intervalMs,
    sizeBytes,
    iface: argv.interface,
    family,
    timeoutS: Math.max(1, Math.ceil((slowMs * 10) / 1000)),
  };

  // runs at least a third of --slow-ms are kept, so shorter culprits still show
  const trace = startTrace({ attach: argv.attach, cpus, stallThresholdNs: Math.min(1e6, (slowMs * 1e6) / 3), maxPackets: 100_000, seriesIntervalNs: 1e9 });
  const start = clockPair();
  const stop = onStopSignal();
  const abort = new AbortController();
  let stopReason = '';
  let run: PingRun;
  try {
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
    trace.stop();
  }
  const facts = gatherHostFacts(); // once, for the base verdict and the ping's
  const base = reportFromTrace({ trace, start, extraNotes: stopReason ? [stopReason] : [], possibleCpus: possible, tracedCpus: cpus, facts });
  const report: PingReport = { ...base, ping: pingSection(base, argv.target, params, run, slowMs, facts) };
  if (explainFrom) {
    // the other end's own trace of our slow echo requests: matched by id and sequence, never by clock
    // echo sequence numbers are 16 bits on the wire; rows count on past 65535
    const onWire = new Map(report.ping.replies.filter((r) => r.slow).map((r) => [r.seq & 0xffff, r.seq]));
    if (onWire.size) {
      // the peer lists what its finished intervals hold (one a second): the last requests' is the next
      await new Promise((r) => setTimeout(r, PEER_INTERVAL_MS));
      const peer = await askPeer(explainFrom, params.id, [...onWire.keys()]);
      report.ping.peer = { ...peer, probes: peer.probes.map((p) => ({ ...p, seq: onWire.get(p.seq) ?? p.seq })) };
    } else report.ping.peer = { url: explainFrom.href, state: 'answered', node: null, detail: 'no slow reply to ask about', probes: [] };
    if (report.ping.peer.state !== 'answered') say(`note: --explain-from ${explainFrom.href}: ${report.ping.peer.state} (${report.ping.peer.detail})`);
  }
  if (argv.out) {
    writeAtomic(argv.out, JSON.stringify(report, null, 1) + '\n');
    say(`wrote ${argv.out}`);
  }
  if (argv.format === 'json' && !argv.out) process.stdout.write(JSON.stringify(report, null, 1) + '\n');
  else {
    const slow = slowRepliesText(report.ping);
    const peer = report.ping.peer ? peerSectionText(report.ping) : '';
    process.stdout.write(`${slow ? slow + '\n\n' : ''}${peer ? peer + '\n\n' : ''}${report.ping.verdict.text}\n`);
  }
  const d = report.meta.drops;
  if (d.total || d.badRecords || d.consumeErrors) say(`warning: events were lost, so attribution may miss some (${lossText(d)})`);
}

function pingSection(report: Report, target: string, p: PingParams, run: PingRun, slowMs: number, facts: HostFacts): PingSection {
  const rows = attributeReplies(run.sent, run.replies, report.icmp.packets, report.stalls.rows, { id: p.id, slowMs });
  // the interface the replies came in on, in this network namespace
  const replyIf = report.icmp.packets.find((x) => x.id === p.id && (x.type === 0 || x.type === 129))?.ifindex;
  const ifname = p.iface ?? (replyIf !== undefined ? (facts.interfaces[replyIf] ?? null) : null);
  const verdict = pingVerdictOf({ target, sent: run.sent, received: run.replies.length, slowMs, ifname }, rows, report.stalls.rows, facts);
  return {
    target,
    address: p.address,
    id: p.id,
    count: p.count,
    intervalMs: p.intervalMs,
    sizeBytes: p.sizeBytes,
    interface: p.iface ?? null,
    replies: rows,
    verdict,
  };
}

function slowRepliesText(s: PingSection, limit = 20): string {
  const slow = s.replies.filter((r) => r.slow).slice(0, limit);
  if (!slow.length) return '';
  const lines = ['slow replies:', '  seq     rtt  req cpu  reply cpu      wait  culprit'];
  for (const r of slow) {
    const a = r.attribution;
    lines.push(
      `  ${String(r.seq).padStart(3)}  ${fmtNs((r.rttMs ?? 0) * 1e6).padStart(6)}  ${String(r.requestCpu ?? '-').padStart(7)}  ${String(r.replyCpu ?? '-').padStart(9)}  ${(r.waitMs === null ? '-' : `${r.waitBound ? '<= ' : ''}${fmtNs(r.waitMs * 1e6)}`).padStart(8)}  ${a ? `${a.culprit} on CPU ${a.cpu}, overlap ${a.overlapMs.toFixed(1)} ms` : '-'}`,
    );
  }
  return lines.join('\n');
}
