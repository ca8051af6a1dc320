// A per-CPU sparkline of NET_RX wait over the last minute: one character per
// second, on a fixed log scale so CPUs (and minutes) compare at a glance.

/** Upper bounds (ms) of the first seven levels; the eighth is 100 ms and more. */
const LEVELS_MS = [0.1, 0.3, 1, 3, 10, 30, 100];
const BARS = '▁▂▃▄▅▆▇█';

export const SPARK_LEGEND = 'one char a second: ▁ <0.1ms ▂ <0.3 ▃ <1 ▄ <3 ▅ <10 ▆ <30 ▇ <100 █ >=100ms, blank: no NET_RX';

/** One character per value (ns); null (nothing measured) is a blank. */
export function sparkline(values: (number | null)[]): string {
  return values
    .map((ns) => {
      if (ns === null) return ' ';
      const ms = ns / 1e6;
      const i = LEVELS_MS.findIndex((hi) => ms < hi);
      return BARS[i < 0 ? BARS.length - 1 : i];
    })
    .join('');
}

/** The level (0-7) a sparkline character stands for, -1 for a blank. */
export function sparkLevel(ch: string): number {
  return BARS.indexOf(ch);
}
