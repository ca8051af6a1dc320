// The shapes of a report (jitterscope.report/v2, schema/report.v2.json): what
// readers, views and the exporter see. report/model.ts builds them.
import { ProbeStatus } from '../kernel/probes';
import { ReceiveStallRow, SlowPacket, StallRow } from '../diagnose/attribute';
import type { ReplyRow } from '../diagnose/ping';
import type { WakeupRow } from '../diagnose/wakeup';
import { PacketVerdict } from '../diagnose/verdict';
import { PingVerdict } from '../diagnose/ping';
import { Packet } from '../stream/aggregate';
import { ReportSeries } from './series';
import type { PeerAnswer } from '../diagnose/explain';
import type { CpuSummary, HistogramRow, TimerRow } from '../diagnose/summary';
import type { MeshView } from '../diagnose/mesh';

export type { CpuSummary, HistogramRow, TimerRow };

export const REPORT_SCHEMA_ID = 'jitterscope.report/v2';

export interface Report {
  schema: typeof REPORT_SCHEMA_ID;
  meta: {
    tool: { name: 'jitterscope'; version: string };
    host: string;
    kernel: string;
    command: string[];
    startTime: string;
    endTime: string;
    durationMs: number;
    clock: { source: 'CLOCK_MONOTONIC'; startNs: number; realtimeOffsetNs: number };
    cpus: { possible: number; traced: number[] | 'all' };
    probes: Record<string, ProbeStatus>;
    /** Ring-full drops per CPU, and records the reader lost (absent in reports before they were counted). */
    drops: { total: number; perCpu: number[]; badRecords?: number; consumeErrors?: number };
    /** Events read from the ring, by kind (a report states them; the aggregator's counters fill them). */
    events: {
      softirq: number;
      timer: number;
      hrtimer: number;
      packet: number;
      func: number;
      pause: number;
      task: number;
      wakeup: number;
      unknown: number;
      total: number;
    };
    notes: string[];
  };
  cpus: CpuSummary[];
  histograms: HistogramRow[];
  timers: { byMax: TimerRow[]; byTotal: TimerRow[] };
  /** The culprit behind the slow packets, if one stands out. */
  verdict: PacketVerdict;
  packets: {
    slowThresholdNs: number;
    /** Packets (any protocol) that waited at least the threshold, oldest first, with what explains each. */
    slow: SlowPacket[];
    slowNotKept: number;
    /** Packets whose arrival the kernel did not see (their wait is unknown). */
    waitUnknown: number;
  };
  icmp: {
    perCpu: { cpu: number; count: number }[];
    packets: Packet[];
    packetsNotKept: number;
    slowest: Packet[];
  };
  stalls: { thresholdNs: number; rows: StallRow[]; notKept: number };
  /** NET_RX runs that started at least the slow-packet threshold late, each explained; absent in older reports. */
  receive?: { thresholdNs: number; stalls: ReceiveStallRow[]; notKept: number };
  /** Tasks woken by receive processing that waited to run, or lost their run to softirqs, each explained; absent in older reports. */
  wakeups?: { thresholdNs: number; slow: WakeupRow[]; notKept: number };
  /** Per-CPU figures per interval; absent in reports written before it existed. */
  series?: ReportSeries;
  /** serve --mesh's /report: the peers probed and where their slow probes were held. */
  mesh?: MeshView;
}

/** What `ping` adds to the report: its replies, each explained, and its verdict. */
export interface PingSection {
  target: string;
  address: string;
  id: number;
  count: number;
  intervalMs: number;
  sizeBytes: number;
  interface: string | null;
  replies: ReplyRow[];
  verdict: PingVerdict;
  /** --explain-from: what the target's own serve saw of the slow echo requests; absent without it. */
  peer?: PeerAnswer;
}

export type PingReport = Report & { ping: PingSection };
