// The probe table (docs/design.md) on this build's hooks: which BPF programs
// feed which probe, and how each probe's status is worded for the user.
import { HookMode } from './ladder';

export const PROBE_NAMES = ['ipvs_estimation', 'timer_callbacks', 'softirq', 'net_rx_action', 'net_rx_wait', 'icmp_rcv', 'packet_wait', 'wakeup'] as const;
export type ProbeName = (typeof PROBE_NAMES)[number];

export type Flavour = 'tp_btf' | 'raw_tp';
/** Program name prefix of each flavour in bpf/tracer.bpf.c (TP_PAIR). */
export const FLAVOUR_PREFIX: Record<Flavour, string> = { tp_btf: 'js_', raw_tp: 'jsr_' };

export interface Hook {
  /** Program name without the flavour prefix. */
  name: string;
  tracepoint: string;
  /** Probes that cannot work without this hook. */
  requiredBy: ProbeName[];
  /** Probes that lose detail without it. */
  helps: ProbeName[];
  /** Attached only when streaming every packet (record, top, ping), or only in serve. */
  only?: 'stream' | 'serve';
  /** Attached only when some device polls in NAPI threads (a cost on every wakeup otherwise). */
  napiThreads?: true;
  /** Attached only when the socket of a wake-up comes from this tracepoint (the ladder's sock_ready). */
  sockReady?: true;
}

/**
 * Attached in this order: every exit before its entry, so no entry is ever
 * recorded whose exit is missed (a stale per-CPU slot would swallow the next
 * nested timer's run); receive before arrival for the same reason.
 */
export const HOOKS: Hook[] = [
  { name: 'sirq_exit', tracepoint: 'irq:softirq_exit', requiredBy: ['softirq', 'net_rx_action', 'net_rx_wait', 'wakeup'], helps: [] },
  { name: 'sirq_entry', tracepoint: 'irq:softirq_entry', requiredBy: ['softirq', 'net_rx_action', 'net_rx_wait', 'wakeup'], helps: [] },
  { name: 'sirq_raise', tracepoint: 'irq:softirq_raise', requiredBy: ['net_rx_wait'], helps: [] },
  { name: 'tmr_exit', tracepoint: 'timer:timer_expire_exit', requiredBy: ['timer_callbacks', 'ipvs_estimation'], helps: [] },
  { name: 'tmr_entry', tracepoint: 'timer:timer_expire_entry', requiredBy: ['timer_callbacks', 'ipvs_estimation'], helps: [] },
  { name: 'hrt_exit', tracepoint: 'timer:hrtimer_expire_exit', requiredBy: [], helps: ['timer_callbacks'] },
  { name: 'hrt_entry', tracepoint: 'timer:hrtimer_expire_entry', requiredBy: [], helps: ['timer_callbacks'] },
  { name: 'skb_rcv', tracepoint: 'net:netif_receive_skb', requiredBy: ['icmp_rcv', 'packet_wait'], helps: [], only: 'stream' },
  { name: 'rx_arrive', tracepoint: 'net:netif_rx_entry', requiredBy: [], helps: ['icmp_rcv', 'packet_wait'], only: 'stream' },
  { name: 'gro_arrive', tracepoint: 'net:napi_gro_receive_entry', requiredBy: [], helps: ['icmp_rcv', 'packet_wait'], only: 'stream' },
  { name: 'rcv_arrive', tracepoint: 'net:netif_receive_skb_entry', requiredBy: [], helps: ['icmp_rcv', 'packet_wait'], only: 'stream' },
  // serve: no arrival hooks; packets of NET_RX runs that started late, timed from their raise
  { name: 'skb_late', tracepoint: 'net:netif_receive_skb', requiredBy: ['packet_wait'], helps: [], only: 'serve' },
  // the tasks that held a CPU while NET_RX waited there (ksoftirqd's runs)
  { name: 'sched_switch', tracepoint: 'sched:sched_switch', requiredBy: ['wakeup'], helps: ['net_rx_wait'] },
  // tasks woken inside a NET_RX run: their wait to run (to the switch-in above) and the time taken from them
  { name: 'sched_waking', tracepoint: 'sched:sched_waking', requiredBy: ['wakeup'], helps: [] },
  // the socket whose data became ready just before such a wake-up: its flow (Linux 6.3+)
  { name: 'sk_ready', tracepoint: 'sock:sk_data_ready', requiredBy: [], helps: ['wakeup'], sockReady: true },
  // NAPI threads' wakeups: their wait to run (threaded=1 devices)
  { name: 'sched_wakeup', tracepoint: 'sched:sched_wakeup', requiredBy: [], helps: ['net_rx_wait', 'packet_wait'], napiThreads: true },
];

/** The hooks a session of this kind attaches. */
export function hooksFor(lateRunPacketsOnly: boolean, napiThreads = false, sockReady = false): Hook[] {
  return HOOKS.filter(
    (h) => (!h.only || h.only === (lateRunPacketsOnly ? 'serve' : 'stream')) && (!h.napiThreads || napiThreads) && (!h.sockReady || sockReady),
  );
}

export interface ProbeStatus {
  active: boolean;
  /** The rung it is on: the function itself (fentry, kprobe) or tracepoints; null when inactive. */
  via: HookMode | null;
  /** How it is attached, for people: "fentry", "tp_btf (softirq_entry/exit, vector NET_RX)". */
  mode: string | null;
  /** Why it is inactive, degraded, or not on a better rung. */
  reason: string | null;
  hooks: string[];
}

/** What each probe measures when fed by the tracepoint hooks. */
const TRACEPOINT_DERIVATION: Record<ProbeName, string> = {
  ipvs_estimation: 'timer_expire_* filtered on estimation_timer',
  timer_callbacks: 'timer_expire_*, hrtimer_expire_*',
  softirq: 'softirq_entry/exit',
  net_rx_action: 'softirq_entry/exit, vector NET_RX',
  net_rx_wait: 'softirq_raise -> softirq_entry, vector NET_RX; NAPI threads sched_wakeup -> sched_switch; sched_switch while it waits',
  icmp_rcv: 'netif_receive_skb (+ arrival from netif_rx_entry, netif_receive_skb_entry, or the NET_RX raise of a NAPI poll)',
  packet_wait:
    'netif_rx_entry, netif_receive_skb_entry or the NET_RX raise of a NAPI poll (napi_gro_receive_entry) -> netif_receive_skb; IPv4/IPv6, any protocol',
  wakeup:
    'sched_waking inside a NET_RX run (softirq, ksoftirqd, NAPI thread) -> sched_switch; softirq_entry/exit while the woken task runs; the socket made ready before it (sk_data_ready) for its flow',
};

/** Program names of the fentry and kprobe variants of the probes that have them. */
export const DIRECT_PROGRAMS: Record<'ipvs_estimation' | 'net_rx_action' | 'icmp_rcv' | 'sock_ready', Record<'fentry' | 'kprobe', string[]>> = {
  ipvs_estimation: { fentry: ['jsf_est_entry', 'jsf_est_exit'], kprobe: ['jsk_est_entry', 'jsk_est_exit'] },
  net_rx_action: { fentry: ['jsf_nra_entry', 'jsf_nra_exit'], kprobe: ['jsk_nra_entry', 'jsk_nra_exit'] },
  icmp_rcv: { fentry: ['jsf_icmp_rcv'], kprobe: ['jsk_icmp_rcv'] },
  sock_ready: { fentry: ['jsf_sk_ready'], kprobe: ['jsk_sk_ready'] },
};

/** The probes that may attach to a kernel function directly in the tracer object, for a session of this kind. */
export const directProbes = (lateRunPacketsOnly: boolean) =>
  lateRunPacketsOnly ? (['net_rx_action', 'sock_ready'] as const) : (['net_rx_action', 'icmp_rcv', 'sock_ready'] as const);

/** In serve, packet_wait keeps only the packets of late NET_RX runs (no per-packet arrival hook). */
const SERVE_PACKET_WAIT = 'netif_receive_skb, only in NET_RX runs that started --packet-ms late (serve), timed from their raise';

/** What a probe on the tracepoint rung reports as its status. */
export function tracepointStatus(
  probe: ProbeName,
  flavour: Flavour,
  reason: string | null,
  lateRunPacketsOnly = false,
  napiThreads = false,
  sockReady = false,
): ProbeStatus {
  return {
    active: true,
    via: 'tracepoint',
    mode: `${flavour} (${lateRunPacketsOnly && probe === 'packet_wait' ? SERVE_PACKET_WAIT : TRACEPOINT_DERIVATION[probe]})`,
    reason,
    hooks: hooksFor(lateRunPacketsOnly, napiThreads, sockReady)
      .filter((h) => h.requiredBy.includes(probe) || h.helps.includes(probe))
      .map((h) => h.tracepoint),
  };
}

export function inactiveStatus(reason: string): ProbeStatus {
  return { active: false, via: null, mode: null, reason, hooks: [] };
}
