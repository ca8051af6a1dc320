// The dashboard's fixed words and tables: the histogram panel's measures,
// the footer keys, the help screen, and the colour of a duration.
import type { HistogramRow } from '../diagnose/summary';

/** Views of a CPU the histogram panel can show: [label, probe, key]. */
export const HIST_VIEWS: [string, HistogramRow['probe'], string | null][] = [
  ['packet wait (arrival -> processing)', 'packet_wait', null],
  ['NET_RX wait', 'net_rx_wait', null],
  // the same source as the CPU table's NET_RX run columns (fentry/kprobe or the softirq)
  ['NET_RX run (net_rx_action)', 'net_rx_action', null],
  ['TIMER softirq', 'softirq', 'TIMER'],
  ['HRTIMER softirq', 'softirq', 'HRTIMER'],
  ['ipvs estimation_timer', 'ipvs_estimation', null],
  ['ICMP wait (arrival -> icmp_rcv)', 'icmp_rcv', null],
];

export const HEADER_ROWS = 4;

export const KEYS = 'q quit  ↑↓/jk select  Tab panel  Enter drill down  w window  p/z pause  r reset  ? help';
export const HELP = `jitterscope top — keys

  q, Esc, Ctrl-C   quit (detaches the probes first)
  ↑ ↓ / j k        move the selection in the focused panel
  Tab              next panel (CPUs, histogram, callbacks, stalls, slow packets)
  Enter            CPUs: show the selected CPU's histograms
                   callbacks: show that callback's histogram
  ← → / h l        histogram panel: previous / next measure
  w                window: last 1 s, last 10 s, since start
  p, z             pause / resume the display (tracing goes on)
  r                reset: forget everything collected so far
  ?                this help (any key closes it)

Colours: yellow >= 1 ms, red >= 10 ms.`;

/** A duration's text in the colour of its size: yellow >= 1 ms, red >= 10 ms. */
export function severity(ns: number | null, text: string): string {
  if (ns === null) return text;
  if (ns >= 10e6) return `{red-fg}{bold}${text}{/bold}{/red-fg}`;
  if (ns >= 1e6) return `{yellow-fg}${text}{/yellow-fg}`;
  return text;
}
