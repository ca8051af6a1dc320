// Test-only encoder: builds event batches the way the BPF side lays them out
// (by the offsets in src/kernel/abi.ts, which 02-abi checks against the addon).
import { EVENT_SIZE, OFFSETS, Kind, Flag } from '../src/kernel/abi';
import { PROBE_NAMES, ProbeName, ProbeStatus } from '../src/kernel/probes';
import { buildReport } from '../src/report/model';
import type { Aggregator } from '../src/stream/aggregate';
import type { SlowPacket } from '../src/diagnose/attribute';

export interface FakeEvent {
  kind: number;
  cpu: number;
  startNs: number;
  durationNs: number;
  key?: bigint;
  flags?: number;
  waitNs?: number;
  /** A softirq event flagged THREADED: the NAPI thread's pid. */
  threadPid?: number;
  /** A packet: IPv4 dotted or IPv6 addresses; ICMP id/seq travel as sport/dport. */
  pkt?: { saddr: string; daddr: string; proto: number; sport?: number; dport?: number; type?: number; code?: number; arrivalCpu?: number };
  /** A task event's comm and ids. */
  task?: { comm: string; pid: number; tgid?: number };
  /** A wake-up event's task, the CPU that woke it, and (flag STOLEN) what softirqs took. */
  wake?: { comm: string; pid: number; tgid?: number; wakerCpu?: number; stolenNs?: number; queuedNs?: number };
}

export function encode(events: FakeEvent[]): ArrayBuffer {
  const buf = new ArrayBuffer(events.length * EVENT_SIZE);
  const dv = new DataView(buf);
  events.forEach((e, i) => {
    const o = i * EVENT_SIZE;
    dv.setBigUint64(o + OFFSETS.start_ns, BigInt(e.startNs), true);
    dv.setBigUint64(o + OFFSETS.duration_ns, BigInt(e.durationNs), true);
    dv.setBigUint64(o + OFFSETS.key, e.key ?? 0n, true);
    dv.setUint32(o + OFFSETS.cpu, e.cpu, true);
    dv.setUint16(o + OFFSETS.kind, e.kind, true);
    dv.setUint16(o + OFFSETS.flags, e.flags ?? 0, true);
    if (e.kind === Kind.SOFTIRQ) {
      dv.setBigUint64(o + OFFSETS['softirq.wait_ns'], BigInt(e.waitNs ?? 0), true);
      dv.setUint32(o + OFFSETS['softirq.thread_pid'], e.threadPid ?? 0, true);
    }
    if (e.pkt) {
      const ip = (s: string, at: number) => {
        if (!s.includes(':')) return s.split('.').forEach((b, j) => dv.setUint8(o + at + j, Number(b)));
        const [head, tail] = s.split('::');
        const h = head ? head.split(':') : [];
        const t = tail !== undefined && tail ? tail.split(':') : [];
        const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
        groups.forEach((g, j) => dv.setUint16(o + at + 2 * j, parseInt(g, 16), false));
      };
      ip(e.pkt.saddr, OFFSETS['pkt.saddr']);
      ip(e.pkt.daddr, OFFSETS['pkt.daddr']);
      dv.setUint16(o + OFFSETS['pkt.sport'], e.pkt.sport ?? 0, true);
      dv.setUint16(o + OFFSETS['pkt.dport'], e.pkt.dport ?? 0, true);
      dv.setUint16(o + OFFSETS['pkt.arrival_cpu'], e.pkt.arrivalCpu ?? e.cpu, true);
      dv.setUint8(o + OFFSETS['pkt.proto'], e.pkt.proto);
      dv.setUint8(o + OFFSETS['pkt.type'], e.pkt.type ?? 0);
      dv.setUint8(o + OFFSETS['pkt.code'], e.pkt.code ?? 0);
    }
    if (e.task) {
      [...e.task.comm.slice(0, 15)].forEach((ch, j) => dv.setUint8(o + OFFSETS['task.comm'] + j, ch.charCodeAt(0)));
      dv.setUint32(o + OFFSETS['task.pid'], e.task.pid, true);
      dv.setUint32(o + OFFSETS['task.tgid'], e.task.tgid ?? e.task.pid, true);
    }
    if (e.wake) {
      [...e.wake.comm.slice(0, 15)].forEach((ch, j) => dv.setUint8(o + OFFSETS['wake.comm'] + j, ch.charCodeAt(0)));
      dv.setUint32(o + OFFSETS['wake.pid'], e.wake.pid, true);
      dv.setUint32(o + OFFSETS['wake.tgid'], e.wake.tgid ?? e.wake.pid, true);
      dv.setBigUint64(o + OFFSETS['wake.stolen_ns'], BigInt(e.wake.stolenNs ?? 0), true);
      if (e.wake.queuedNs !== undefined) dv.setBigUint64(o + OFFSETS['wake.queued_ns'], BigInt(e.wake.queuedNs), true);
      dv.setUint32(o + OFFSETS['wake.waker_cpu'], e.wake.wakerCpu ?? 0, true);
    }
  });
  return buf;
}

export { Kind, Flag };

/** The report of a made-up trace: every probe active on tracepoints, 10 s from time 0, 2 CPUs. */
export function report(agg: Aggregator) {
  const probes = Object.fromEntries(
    PROBE_NAMES.map((n) => [n, { active: true, via: 'tracepoint', mode: 'tp_btf', reason: null, hooks: [] }]),
  ) as unknown as Record<ProbeName, ProbeStatus>;
  return buildReport({
    aggregator: agg,
    probes,
    notes: [],
    drops: { total: 0, perCpu: [0, 0], badRecords: 0, consumeErrors: 0 },
    start: { wall: new Date(0), monoNs: 0, realtimeOffsetNs: 0 },
    endWall: new Date(10_000),
    possibleCpus: 2,
    command: [],
    version: 'test',
  });
}

/** A packet serve listed slow: an ICMP echo request from 198.18.0.1 in a late NET_RX run, as `over` changes it. */
export function slowPacket(over: Partial<SlowPacket> = {}): SlowPacket {
  return {
    startNs: 0,
    cpu: 1,
    arrivalCpu: 0,
    ifindex: 2,
    family: 4,
    proto: 'icmp',
    saddr: '198.18.0.1',
    daddr: '198.18.0.2',
    sport: null,
    dport: null,
    type: 8,
    code: 0,
    id: 4242,
    seq: 1,
    waitNs: 1e6,
    slow: true,
    path: 'late-run',
    attribution: null,
    ...over,
  };
}
