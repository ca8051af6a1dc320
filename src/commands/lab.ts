// `jitterscope lab`: a known culprit on demand. Stalls one CPU in HRTIMER
// softirq context on a BPF timer and, optionally, steers interfaces' RPS to
// it; every exit path stops the timer and restores the saved masks.
import fs from 'node:fs';
import type { Argv } from 'yargs';
import { UsageError } from '../base/errors';
import { requireTracingCaps } from '../host/caps';
import { formatCpuMask, interfaceExists, rpsFile, rpsQueues } from '../host/net';
import { native } from '../kernel/addon';
import { LabStall } from '../kernel/lab-stall';
import { onStopSignal, say } from './common';
import { parseCpuList, parseDurationMs, parseIntInRange, parseMsInRange } from '../base/options';

export interface LabArgs {
  cpu: string;
  'stall-ms': string;
  'period-ms': string;
  rps?: string[];
  duration?: string;
  'pause-ms'?: string;
  'pause-every-ms': string;
}

export function labOptions(y: Argv): Argv<LabArgs> {
  return y
    .option('cpu', { type: 'string', default: '1', describe: 'CPU to stall' })
    .option('stall-ms', { type: 'string', default: '15', describe: 'Length of each stall' })
    .option('period-ms', { type: 'string', default: '200', describe: 'Time between stalls' })
    .option('rps', { type: 'string', array: true, describe: "DEV or DEV:CPUS: steer DEV's receive queues to the stalled CPU (or CPUS) while running" })
    .option('duration', { alias: 'd', type: 'string', describe: 'Stop after this long (default: until Ctrl-C)' })
    .option('pause-ms', {
      type: 'string',
      describe: 'Also hold interrupts off on the CPU this long, from its timer interrupt: what a host pausing the vCPU looks like (tests use it)',
    })
    .option('pause-every-ms', { type: 'string', default: '1000', describe: 'Time between those pauses' })
    .example('$0 lab --cpu 1 --rps lo', 'stall CPU 1 and steer loopback to it; try ping 127.0.0.1') as unknown as Argv<LabArgs>;
}

export async function lab(argv: LabArgs): Promise<void> {
  const possible = native().numPossibleCpus;
  const cpu = parseIntInRange(argv.cpu, '--cpu', 0, possible - 1);
  const stallMs = parseMsInRange(argv['stall-ms'], '--stall-ms', 0.1, 100);
  const periodMs = parseMsInRange(argv['period-ms'], '--period-ms', 10, 600_000);
  if (stallMs >= periodMs) throw new UsageError('--stall-ms must be shorter than --period-ms');
  const durationMs = argv.duration !== undefined ? parseDurationMs(argv.duration) : Infinity;
  const pauseMs = argv['pause-ms'] === undefined ? 0 : parseMsInRange(argv['pause-ms'], '--pause-ms', 0, 50);
  const pauseEveryMs = parseMsInRange(argv['pause-every-ms'], '--pause-every-ms', 100, 600_000);
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
    stall = new LabStall({ cpu, stallMs, periodMs, pauseMs, pausePeriodMs: pauseEveryMs });
    if (pauseMs) say(`lab: holding interrupts off on CPU ${cpu} for ${pauseMs} ms every ${pauseEveryMs} ms (a pause, as the host would make)`);
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
    const ps = stall.pauseStats();
    say(
      `lab: stopped (${reason}) after ${st.runs} stalls, longest ${(st.maxNs / 1e6).toFixed(2)} ms${st.otherCpuRuns ? `, ${st.otherCpuRuns} ran off CPU ${cpu}` : ''}${pauseMs ? `; ${ps.runs} pauses, longest ${(ps.maxNs / 1e6).toFixed(2)} ms` : ''}`,
    );
  } finally {
    stop.dispose();
    stall?.stop();
    restore();
  }
}
