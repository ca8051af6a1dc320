// Timing assertions on machines whose host pauses them (docs/testing.md). A pause
// may excuse only a timing assertion, and only the samples it touched: the
// tracer streams host pauses itself (a hard hrtimer that fired late), so a
// sample whose window overlapped a pause on one of its CPUs leaves the
// assertion's denominator, and the samples that remain must meet it. Every
// other check in a test is a plain assert that no pause can excuse.
// Pure logic: it reads reports, never the kernel.
import assert from 'node:assert/strict';

/** A pause the tracer saw: its CPU took no timer interrupt over [startNs, startNs + durationNs]. */
export interface PauseSpan {
  cpu: number;
  startNs: number;
  durationNs: number;
  /** How long before startNs it may have begun (default PAUSE_LEAD_NS). */
  leadNs?: number;
}

/** When a sample was exposed, and on which CPUs (CLOCK_MONOTONIC ns, as reports are). */
export interface SampleWindow {
  cpus: number[];
  fromNs: number;
  toNs: number;
}

/**
 * A pause is first seen when a hard timer falls due inside it, so the tracer's
 * start is a lower bound: on a tickless CPU the pause may have begun this long
 * before it (measured: a 20 ms lab pause seen as its last 5-7 ms).
 */
export const PAUSE_LEAD_NS = 20e6;

/**
 * On a CPU running a task the tick is on (nohz stops it only in idle): the
 * tick's hard timer falls due at least once a jiffy, so a pause began at most
 * this long before it was seen. One jiffy at HZ=250 (Debian's kernels and
 * this host; longer than a jiffy at any higher HZ).
 */
export const BUSY_PAUSE_LEAD_NS = 4e6;

type StallRows = { stalls: { rows: { kind: string; cpu: number; startNs: number; durationNs: number }[] } };

/**
 * The pauses in a report (its stall rows of kind 'pause'), each with how early
 * it may have begun: a jiffy where the report shows a task holding that CPU
 * when the pause was seen (a 'task' or 'self' row), else PAUSE_LEAD_NS.
 */
export function pausesOf(report: StallRows): PauseSpan[] {
  const rows = report.stalls.rows;
  const busy = (cpu: number, at: number) =>
    rows.some((s) => (s.kind === 'task' || s.kind === 'self') && s.cpu === cpu && s.startNs <= at - BUSY_PAUSE_LEAD_NS && s.startNs + s.durationNs >= at);
  return rows
    .filter((s) => s.kind === 'pause')
    .map((s) => ({ cpu: s.cpu, startNs: s.startNs, durationNs: s.durationNs, leadNs: busy(s.cpu, s.startNs) ? BUSY_PAUSE_LEAD_NS : PAUSE_LEAD_NS }));
}

export function touchedByPause(w: SampleWindow, pauses: PauseSpan[]): boolean {
  return pauses.some((p) => w.cpus.includes(p.cpu) && w.fromNs <= p.startNs + p.durationNs && w.toNs >= p.startNs - (p.leadNs ?? PAUSE_LEAD_NS));
}

export type Verdict = 'pass' | 'fail' | 'too-few';

export interface Judgement {
  what: string;
  verdict: Verdict;
  /** Samples no pause touched, those of them that met the check, and those set aside. */
  clean: number;
  good: number;
  excused: number;
  text: string;
}

export interface ShareCheck<T> {
  /** What is counted, e.g. "slow echo requests attributed to bpf_timer_cb on CPU 1". */
  what: string;
  samples: T[];
  window: (s: T) => SampleWindow;
  ok: (s: T) => boolean;
  /** Of the clean samples, at least this share must be ok (1: every one). */
  minShare: number;
  /** At least this many clean samples are needed to judge. */
  minSamples: number;
  /**
   * The noise: the rate at which one clean sample goes wrong on a correct build
   * on these machines, for reasons the test cannot see (measured over many
   * runs; docs/testing.md has each figure and where it comes from).
   */
  noise: number;
  /**
   * The share the false-failure budget may loosen minShare to at small n
   * (default FLOOR_SHARE); below it, the samples are too few to judge at this noise.
   */
  floorShare?: number;
  /** How a sample reads in the message: the clean samples that failed are listed with it. */
  show?: (s: T) => string;
}

/**
 * The suite's false-failure budget for each judged share: the chance that it
 * fails a correct build. About 40 judgements run in a suite, each under 1 in
 * 2,000, so the whole suite fails a correct build less than one run in ten
 * (docs/testing.md).
 */
export const FALSE_FAILURE_BUDGET = 1 / 2000;

/** The lowest share the budget loosens a check to, unless the check says otherwise. */
export const FLOOR_SHARE = 0.7;

/** P(X > m) for X ~ Binomial(n, p): the chance of more than m misses among n samples. */
export function binomialTail(n: number, p: number, m: number): number {
  if (m >= n) return 0;
  if (m < 0) return 1;
  let term = Math.pow(1 - p, n); // P(X = 0)
  let cdf = term;
  for (let k = 1; k <= m; k++) {
    term *= ((n - k + 1) / k) * (p / (1 - p));
    cdf += term;
  }
  return Math.max(0, 1 - cdf);
}

/**
 * The misses a check allows among n clean samples: those its own share allows
 * (floor(n·(1 - minShare))), or, where that would fail a correct build more
 * often than the budget at this noise, the fewest that do not (a looser share,
 * said in the message). null when even floorShare would not do: the samples
 * are too few to judge at this noise.
 */
export function allowedMisses(
  n: number,
  minShare: number,
  noise: number,
  floorShare = FLOOR_SHARE,
): { misses: number; tail: number; loosened: boolean } | null {
  const own = Math.floor(n * (1 - minShare) + 1e-9);
  if (binomialTail(n, noise, own) <= FALSE_FAILURE_BUDGET) return { misses: own, tail: binomialTail(n, noise, own), loosened: false };
  // a check whose own share is below the floor is not loosened at all
  const most = Math.floor(n * (1 - Math.min(floorShare, minShare)) + 1e-9);
  for (let m = own + 1; m <= most; m++) {
    const tail = binomialTail(n, noise, m);
    if (tail <= FALSE_FAILURE_BUDGET) return { misses: m, tail, loosened: true };
  }
  return null;
}

const fmtChance = (x: number) => (x < 1e-9 ? '< 1e-9' : x.toExponential(1));

/**
 * Judges a share of samples with the paused ones set aside:
 *  - enough clean samples: pass or fail on their share alone, the share
 *    loosened where the noise would fail a correct build more often than the
 *    budget (allowedMisses); a shortfall at an n too small for that is
 *    'too-few' (run again, longer);
 *  - too few clean ones: 'too-few' (run again, longer) only if the excused
 *    ones could have made up both the count and the share; otherwise the
 *    shortfall is not the host's doing, and it fails.
 */
export function judgeShare<T>(c: ShareCheck<T>, pauses: PauseSpan[]): Judgement {
  const excusedSet = c.samples.filter((s) => touchedByPause(c.window(s), pauses));
  const clean = c.samples.filter((s) => !excusedSet.includes(s));
  const good = clean.filter(c.ok).length;
  const excused = excusedSet.length;
  const n = clean.length;
  const allowed = allowedMisses(n, c.minShare, c.noise, c.floorShare);
  const ownNeed = Math.ceil(c.minShare * n - 1e-9);
  let verdict: Verdict;
  if (n >= c.minSamples) verdict = good >= ownNeed || (allowed && n - good <= allowed.misses) ? 'pass' : allowed ? 'fail' : 'too-few';
  else {
    const couldCount = clean.length + excused >= c.minSamples;
    const couldShare = good + excused >= c.minShare * (clean.length + excused);
    verdict = couldCount && couldShare ? 'too-few' : 'fail';
  }
  const rule = allowed?.loosened
    ? `, loosened to ${n - allowed.misses} of ${n} by the noise`
    : !allowed && n >= c.minSamples && verdict !== 'pass'
      ? `; too few to judge at this noise`
      : '';
  const chance = allowed ? `; false-failure chance ${fmtChance(allowed.tail)} at noise ${c.noise}` : '';
  const text =
    `${c.what}: ${good} of ${clean.length} clean samples (need ${c.minSamples}+ at ${Math.round(c.minShare * 100)}%${rule}${chance})` +
    `${excused ? `, ${excused} set aside: a pause touched them` : ''}` +
    (c.show && good < clean.length
      ? `; failed: ${clean
          .filter((s) => !c.ok(s))
          .slice(0, 5)
          .map(c.show)
          .join(', ')}`
      : '');
  return { what: c.what, verdict, clean: clean.length, good, excused, text };
}

/** At least `min` samples, not counting those a pause touched: a share check every sample passes. */
export function judgeCount<T>(what: string, samples: T[], window: (s: T) => SampleWindow, min: number, pauses: PauseSpan[]): Judgement {
  return judgeShare({ what, samples, window, ok: () => true, minShare: 1, minSamples: min, noise: 0 }, pauses);
}

export interface TimingContext {
  /** 0 for the first run; each later run should carry more traffic. */
  attempt: number;
  /** Traffic scale for this attempt: 1, 2, 3... */
  scale: number;
}

/**
 * Runs a timing test up to `attempts` times. `run` asserts everything that is
 * not timing with plain asserts (those fail at once, whatever the host did) and
 * returns its timing judgements. Any 'fail' fails the test. When some are
 * 'too-few' because pauses took their samples, it runs again with more traffic;
 * after the last attempt it skips, printing the figures.
 */
export async function timingTest(
  t: { skip: (m?: string) => void; diagnostic?: (m: string) => void },
  run: (ctx: TimingContext) => Promise<Judgement[]>,
  attempts = 3,
): Promise<'pass' | 'skip'> {
  let last: Judgement[] = [];
  for (let attempt = 0; attempt < attempts; attempt++) {
    last = await run({ attempt, scale: attempt + 1 });
    for (const j of last) process.stderr.write(`timing (run ${attempt + 1}): ${j.verdict}: ${j.text}\n`);
    const failed = last.filter((j) => j.verdict === 'fail');
    if (failed.length) assert.fail(failed.map((j) => j.text).join('; '));
    if (last.every((j) => j.verdict === 'pass')) return 'pass';
  }
  const why = `host pauses left too few clean samples after ${attempts} runs: ${last
    .filter((j) => j.verdict !== 'pass')
    .map((j) => j.text)
    .join('; ')}`;
  process.stderr.write(`SKIP: ${why}\n`);
  t.skip(why);
  return 'skip';
}

/** A packet's window as reports list it: from arrival to processing, on the CPUs that touched it. */
export function packetWindow(p: { startNs: number; waitNs: number | null; cpu: number; arrivalCpu: number }): SampleWindow {
  return { cpus: [p.cpu, p.arrivalCpu], fromNs: p.startNs, toNs: p.startNs + (p.waitNs ?? 0) };
}

/**
 * A ping reply's window: the whole round trip, from when ping sent the request
 * to when it read the reply, on the CPUs that processed either packet and the
 * CPUs the ping ran on. ping's clock is wall time: the report's offset maps it.
 */
export function replyWindow(
  r: { wallTime: string | null; rttMs: number | null; requestCpu: number | null; replyCpu: number | null; arrivalCpus: number[] },
  realtimeOffsetNs: number,
  senderCpus: number[],
): SampleWindow {
  const toNs = Date.parse(r.wallTime ?? '') * 1e6 - realtimeOffsetNs + 1e6; // wallTime is whole ms
  const fromNs = toNs - (r.rttMs ?? 0) * 1e6 - 2e6;
  const cpus = [r.requestCpu, r.replyCpu, ...r.arrivalCpus, ...senderCpus].filter((c): c is number => c !== null);
  return { cpus: [...new Set(cpus)], fromNs, toNs };
}

/**
 * Samples a view marks as paused itself (top's per-CPU table shows the pauses
 * of each refresh's window): the spans and the window function that set
 * exactly those samples aside, and no other.
 */
export function markedPauses<T extends { i: number; paused: boolean }>(samples: T[]): { pauses: PauseSpan[]; window: (s: T) => SampleWindow } {
  return {
    pauses: samples.filter((s) => s.paused).map((s) => ({ cpu: 0, startNs: s.i * 1e9, durationNs: 0 })),
    window: (s) => ({ cpus: [0], fromNs: s.i * 1e9, toNs: s.i * 1e9 }),
  };
}
