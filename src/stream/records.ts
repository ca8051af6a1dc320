// The records the aggregator keeps besides its histograms (packets, stalls,
// receive stalls) and the bounded list that keeps the newest of them.

export type Protocol = 'tcp' | 'udp' | 'icmp' | 'icmpv6' | `ip-${number}`;

export const PROTOCOLS: Record<number, Protocol> = { 6: 'tcp', 17: 'udp', 1: 'icmp', 58: 'icmpv6' };

/** A received packet, as streamed: slow ones of any protocol, and every ICMP one. */
export interface Packet {
  startNs: number; // arrival (or processing when arrival was not seen), monotonic
  cpu: number; // CPU that processed it (__netif_receive_skb)
  arrivalCpu: number;
  ifindex: number;
  family: 4 | 6;
  proto: Protocol;
  saddr: string;
  daddr: string;
  /** TCP and UDP ports; null for ICMP and ICMPv6 (their echo id and sequence are id and seq). */
  sport: number | null;
  dport: number | null;
  /** ICMP type, code and echo id/seq; null for TCP and UDP. */
  type: number | null;
  code: number | null;
  id: number | null;
  seq: number | null;
  waitNs: number | null; // arrival -> processing; null when the arrival was not seen
  /** Waited at least the slow-packet threshold. */
  slow: boolean;
  /**
   * How its wait was measured: 'backlog' from when it was queued (exact);
   * 'napi' first seen in a NAPI poll, its wait from the NET_RX raise (or the NAPI thread's wakeup) that
   * scheduled the poll (exact for the poll's first packet); 'napi-bound' a
   * later packet of such a poll (an upper bound); 'late-run' (serve) timed
   * from the raise of the late NET_RX run that processed it (an upper bound).
   * Absent in older reports.
   */
  path?: 'backlog' | 'napi' | 'napi-bound' | 'late-run';
}

/**
 * 'pause': the CPU took no timer interrupt for a while (a hard hrtimer fired
 * that late). 'task': a task held the CPU while NET_RX waited there. 'self':
 * a thread of jitterscope's own process did (the observer in the way: shown
 * apart, never a verdict's culprit).
 */
export const STALL_KINDS = ['softirq', 'timer', 'hrtimer', 'pause', 'task', 'self'] as const;
export type StallKind = (typeof STALL_KINDS)[number];

export interface Stall {
  kind: StallKind;
  cpu: number;
  /** softirq vector, callback address (low 52 bits; for a pause, the late timer's), a task's pid, or (self) the tracer's process id */
  key: number;
  startNs: number;
  durationNs: number;
  /** A task's comm. */
  label?: string;
}

/**
 * A receive stall: a NET_RX run (or a NAPI thread's run) that started at
 * least the slow-packet threshold after it was raised (woken). Whatever held the CPU from the raise to the
 * run held up every packet that run then processed.
 */
export interface ReceiveStall {
  cpu: number;
  raiseNs: number;
  /** When the run started (monotonic). */
  startNs: number;
  /** raise -> start. */
  waitNs: number;
  /** How long the run took. */
  runNs: number;
  /** It ran in ksoftirqd (the kernel deferred it), not at an interrupt's exit. */
  deferred: boolean;
  /** The run of a NAPI thread (threaded=1), this pid; raise is its wakeup (or preemption). Else null. */
  napiThread: number | null;
}

/**
 * A task woken inside a NET_RX run (data or room arrived on one of its
 * sockets, almost always): 'wait' is a slow wake-up, from sched_waking
 * (startNs) until it ran on `cpu`; 'ready' is a task already awake (runnable,
 * not running: woken by its own timer, another socket or thread, or busy)
 * whose data became ready in a NET_RX run on wakerCpu, from that data-ready
 * (startNs) until it ran on `cpu`; 'stolen' is the run that followed, from
 * its switch-in for durationNs (capped at 100 ms), of which softirqs on its
 * CPU took stolenNs.
 */
/**
 * The socket a network wake-up was for, as a packet to it reads: the peer
 * (null when the socket is not connected: a listener, an unconnected UDP
 * socket) to the socket's own address and port.
 */
export interface SocketFlow {
  proto: Protocol;
  saddr: string | null;
  sport: number | null;
  daddr: string;
  dport: number;
}

export interface Wakeup {
  kind: 'wait' | 'ready' | 'stolen';
  cpu: number;
  /** The CPU whose receive processing woke it, or made its data ready ('ready'); null for a stolen run. */
  wakerCpu: number | null;
  pid: number;
  tgid: number;
  comm: string;
  startNs: number;
  durationNs: number;
  stolenNs: number;
  /** 'ready' only: how long the task had been runnable when it ran (its run-queue wait, from when its own timer, another socket or thread woke it, or it was preempted); null: not known. */
  queuedNs?: number | null;
  /** The socket whose data became ready just before the wake-up; null: not known (see the wakeup probe's status). Absent in reports saved before flows were traced. */
  flow?: SocketFlow | null;
}

/** The newest `max` items, oldest first on read; counts what it let go. */
export class Newest<T> {
  private readonly items: T[] = [];
  private next = 0;
  private lost = 0;
  constructor(readonly max: number) {}
  /** How many it let go. */
  get dropped(): number {
    return this.lost;
  }
  push(x: T): void {
    if (this.max === 0) this.lost++;
    else if (this.items.length < this.max) this.items.push(x);
    else {
      this.items[this.next] = x;
      this.next = (this.next + 1) % this.max;
      this.lost++;
    }
  }
  /** Takes `other`'s items after its own, oldest first, and what `other` let go (`other` is left as it was). */
  absorb(other: Newest<T>): void {
    for (const x of other.list()) this.push(x);
    this.lost += other.lost;
  }
  list(): T[] {
    return this.items.slice(this.next).concat(this.items.slice(0, this.next));
  }
}
