// Text formatting shared by every view: durations, aligned tables, times of day,
// kernel addresses.

const UNITS: [number, string][] = [
  [1e9, 's'],
  [1e6, 'ms'],
  [1e3, 'us'],
  [1, 'ns'],
];

/** 15.2ms, 980us, 1.05s: three significant digits. */
export function fmtNs(ns: number): string {
  for (const [div, unit] of UNITS) {
    if (ns >= div) {
      const v = ns / div;
      return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)}${unit}`;
    }
  }
  return `${ns}ns`;
}

export const pct = (x: number): string => `${Math.round(x * 100)}%`;

/** Aligned columns: those in `left` left-aligned, the others right-aligned. */
export function table(head: string[], rows: string[][], left: number[] = [0]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (left.includes(i) ? c.padEnd(w[i]) : c.padStart(w[i])))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

/** HH:MM:SS.mmm local time of a monotonic timestamp. */
export function wallTime(monoNs: number, realtimeOffsetNs: number): string {
  const d = new Date((monoNs + realtimeOffsetNs) / 1e6);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}
