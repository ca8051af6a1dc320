// jitterscope's command line: the yargs table, error mapping and dispatch.
// Each command's logic is its own file in commands/; each validates its input
// before touching the kernel, and every exit path detaches the probes.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { BpfError, EnvironmentError, UsageError } from './base/errors';
import { say, VERSION } from './commands/common';
import { bpfRefusalHints } from './host/caps';

/*
 * Each command's module is required only when that command runs (yargs calls
 * only the chosen command's builder): serve, left running on every node, does
 * not carry the dashboard, the HTML report or the ping code in its memory.
 */
/* eslint-disable @typescript-eslint/no-require-imports -- the lazy loading said above */
const commands = {
  doctor: () => require('./commands/doctor') as typeof import('./commands/doctor'),
  lab: () => require('./commands/lab') as typeof import('./commands/lab'),
  ping: () => require('./commands/ping') as typeof import('./commands/ping'),
  record: () => require('./commands/record') as typeof import('./commands/record'),
  report: () => require('./commands/report') as typeof import('./commands/report'),
  serve: () => require('./commands/serve') as typeof import('./commands/serve'),
  top: () => require('./commands/top') as typeof import('./commands/top'),
};
/* eslint-enable @typescript-eslint/no-require-imports */

export const COMMANDS = ['top', 'record', 'ping', 'serve', 'report', 'lab', 'doctor'] as const;

export async function main(args: string[]): Promise<number> {
  const parser = yargs(args)
    .scriptName('jitterscope')
    .usage('$0 <command> [options]\n\nFind the cause of network latency spikes on this node (eBPF).')
    .command(
      'record',
      'Trace softirqs, timer callbacks and received packets, then write a report (JSON, text or HTML)',
      (y) => commands.record().recordOptions(y),
      (a) => commands.record().record(a),
    )
    .command(
      'top',
      'Live per-CPU dashboard (plain text each interval when not on a terminal)',
      (y) => commands.top().topOptions(y),
      (a) => commands.top().top(a),
    )
    .command(
      'ping <target>',
      'Ping while tracing; name the CPU and the callback behind every slow reply',
      (y) => commands.ping().pingOptions(y),
      (a) => commands.ping().ping(a),
    )
    .command(
      'serve',
      'Always-on exporter: Prometheus /metrics, /report?window=, /healthz until SIGTERM',
      (y) => commands.serve().serveOptions(y),
      (a) => commands.serve().serve(a),
    )
    .command(
      'report <file>',
      'Read a saved report again: its text, or --html for a page with plots',
      (y) => commands.report().reportOptions(y),
      (a) => commands.report().report(a),
    )
    .command(
      'lab',
      'Reproduction aid: stall one CPU in softirq context on a timer, optionally steering RPS to it',
      (y) => commands.lab().labOptions(y),
      (a) => commands.lab().lab(a),
    )
    .command(
      'doctor',
      'What this kernel supports, which hook each probe will use, IPVS and RPS state, advice',
      (y) => commands.doctor().doctorOptions(y),
      (a) => commands.doctor().doctor(a),
    )
    .demandCommand(1, `name a command: ${COMMANDS.join(', ')}`)
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
    return 0;
  } catch (e) {
    return exitCodeFor(e);
  }
}

/** One line (plus libbpf's last words for a BpfError) and the exit status: 2 for the user's to fix, 1 otherwise. */
function exitCodeFor(e: unknown): number {
  if (e instanceof UsageError || e instanceof EnvironmentError) {
    say(e.message);
    return 2;
  }
  if (e instanceof BpfError) {
    say(e.message);
    const last = e.detail.trim().split('\n').filter(Boolean).slice(-3);
    for (const l of last) process.stderr.write(`  libbpf: ${l}\n`);
    if (e.code === 'EPERM' || e.code === 'EACCES') for (const h of bpfRefusalHints(e.code)) process.stderr.write(`  ${h}\n`);
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
