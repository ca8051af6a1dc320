// What the HTML report's page script draws (report/html.ts fills it, page.ts
// reads it): times in seconds from the start of the trace, durations in ms.
// Types only, so the page's own build (tsconfig.page.json) reads nothing else.

export interface HistRow {
  cpu: number | null;
  buckets: { lo: number; count: number }[];
}

export interface PageData {
  durationS: number;
  cpus: number[];
  /** The series interval, null when the report has no series. */
  intervalS: number | null;
  /** NET_RX wait max per CPU and interval: x seconds, y CPU, v ms. */
  heat: { x: number; y: number; v: number }[];
  stalls: { t: number; ms: number; cpu: number; culprit: string }[];
  slowPackets: { t: number; cpu: number; waitMs: number | null; flow: string; culprit: string | null }[];
  receiveStalls: { t: number; cpu: number; waitMs: number; deferred: boolean; thread: boolean; culprit: string | null }[];
  wakeups: { t: number; cpu: number; ms: number; text: string }[];
  replies: { t: number; cpu: number | null; rttMs: number | null; slow: boolean; seq: number }[];
  culprit: string | null;
  netRxWait: HistRow[];
  culpritRuns: HistRow[];
}
