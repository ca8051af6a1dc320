// Test-only encoder: builds event batches the way the BPF side lays them out
// (by the offsets in src/abi.ts, which 02-abi checks against the addon).
import { EVENT_SIZE, OFFSETS, Kind, Flag } from '../src/kernel/abi';

export interface FakeEvent {
  kind: number;
  cpu: number;
  startNs: number;
  durationNs: number;
  key?: bigint;
  flags?: number;
  waitNs?: number;
  icmp?: { saddr: string; daddr: string; id: number; seq: number; type: number; code?: number; arrivalCpu?: number };
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
    if (e.kind === Kind.SOFTIRQ) dv.setBigUint64(o + OFFSETS['softirq.wait_ns'], BigInt(e.waitNs ?? 0), true);
    if (e.icmp) {
      const ip = (s: string, at: number) => s.split('.').forEach((b, j) => dv.setUint8(o + at + j, Number(b)));
      ip(e.icmp.saddr, OFFSETS['icmp.saddr']);
      ip(e.icmp.daddr, OFFSETS['icmp.daddr']);
      dv.setUint16(o + OFFSETS['icmp.id'], e.icmp.id, true);
      dv.setUint16(o + OFFSETS['icmp.seq'], e.icmp.seq, true);
      dv.setUint8(o + OFFSETS['icmp.type'], e.icmp.type);
      dv.setUint8(o + OFFSETS['icmp.code'], e.icmp.code ?? 0);
      dv.setUint16(o + OFFSETS['icmp.arrival_cpu'], e.icmp.arrivalCpu ?? e.cpu, true);
    }
  });
  return buf;
}

export { Kind, Flag };
