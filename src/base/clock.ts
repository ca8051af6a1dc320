// The two clocks a trace lives on: BPF timestamps are CLOCK_MONOTONIC
// (bpf_ktime_get_ns), people and logs use wall-clock time.

export interface ClockPair {
  /** Wall-clock time when the pair was sampled. */
  wall: Date;
  /** CLOCK_MONOTONIC in ns at the same moment. */
  monoNs: number;
  /** Wall-clock ns since the epoch = monotonic ns + this. */
  realtimeOffsetNs: number;
}

/** CLOCK_MONOTONIC now, in ns (what bpf_ktime_get_ns reads). */
export function monotonicNs(): number {
  return Number(process.hrtime.bigint());
}

/** Samples CLOCK_MONOTONIC against wall time. */
export function clockPair(): ClockPair {
  const monoNs = monotonicNs();
  const wall = new Date();
  return { wall, monoNs, realtimeOffsetNs: wall.getTime() * 1e6 - monoNs };
}
