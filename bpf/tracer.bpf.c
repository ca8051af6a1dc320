// SPDX-License-Identifier: GPL-2.0
/* jitterscope tracer: softirq and NET_RX waits, timer callbacks, host pauses,
 * NAPI threads' waits, tasks that hold a CPU while receive processing waits,
 * tasks woken by receive processing (their wait to run, the time taken from them),
 * and received packets' waits, from
 * tracepoints (and fentry/kprobe where the ladder picks them). The bodies are
 * in tracer_state/runs/threads/packets.bpf.h; this file defines the
 * programs.
 *
 * Every hook exists twice: as tp_btf (preferred, cheapest) and as raw_tp
 * (fallback for kernels whose BTF lacks the tracepoint). User space switches
 * one family off with bpf_program__set_autoload() before load. The bodies read
 * kernel memory with BPF_CORE_READ so one body serves both flavours.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "common.bpf.h"

char LICENSE[] SEC("license") = "GPL";
#include "hist.bpf.h"
#include "skb_id.bpf.h"
#include "tracer_state.bpf.h"
#include "tracer_wakeups.bpf.h"
#include "tracer_runs.bpf.h"
#include "tracer_threads.bpf.h"
#include "tracer_packets.bpf.h"

/* ---- the programs ------------------------------------------------------ */

/* Off unless user space picks them (autoload); names: jsf_ fentry, jsk_ kprobe. */
SEC("fentry/net_rx_action") int BPF_PROG(jsf_nra_entry) { return on_net_rx_action_entry(); }
SEC("fexit/net_rx_action") int BPF_PROG(jsf_nra_exit) { return on_net_rx_action_exit(); }
SEC("kprobe/net_rx_action") int BPF_KPROBE(jsk_nra_entry) { return on_net_rx_action_entry(); }
SEC("kretprobe/net_rx_action") int BPF_KRETPROBE(jsk_nra_exit) { return on_net_rx_action_exit(); }
SEC("fentry/icmp_rcv") int BPF_PROG(jsf_icmp_rcv, struct sk_buff *skb) { return on_icmp_rcv(skb, true); }
SEC("kprobe/icmp_rcv") int BPF_KPROBE(jsk_icmp_rcv, struct sk_buff *skb) { return on_icmp_rcv(skb, false); }
/* the socket made ready before a wake-up, where sock:sk_data_ready (6.3+) is not the choice */
SEC("fentry/sock_def_readable") int BPF_PROG(jsf_sk_ready, struct sock *sk) { return on_sk_ready(sk); }
SEC("kprobe/sock_def_readable") int BPF_KPROBE(jsk_sk_ready, struct sock *sk) { return on_sk_ready(sk); }

/* ---- the two program families ------------------------------------------ */

#define TP_PAIR(tp, name, body, type, arg)                         \
	SEC("tp_btf/" #tp) int BPF_PROG(js_##name, type arg) { return body(arg); } \
	SEC("raw_tp/" #tp) int BPF_PROG(jsr_##name, type arg) { return body(arg); }

TP_PAIR(softirq_raise, sirq_raise, on_softirq_raise, unsigned int, vec)
TP_PAIR(softirq_entry, sirq_entry, on_softirq_entry, unsigned int, vec)
TP_PAIR(softirq_exit, sirq_exit, on_softirq_exit, unsigned int, vec)
TP_PAIR(timer_expire_entry, tmr_entry, on_timer_entry, struct timer_list *, timer)
TP_PAIR(timer_expire_exit, tmr_exit, on_timer_exit, struct timer_list *, timer)
TP_PAIR(hrtimer_expire_entry, hrt_entry, on_hrtimer_entry, struct hrtimer *, timer)
TP_PAIR(hrtimer_expire_exit, hrt_exit, on_hrtimer_exit, struct hrtimer *, timer)
SEC("tp_btf/sched_switch") int BPF_PROG(js_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next) { return on_sched_switch(preempt, prev, next); }
SEC("raw_tp/sched_switch") int BPF_PROG(jsr_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next) { return on_sched_switch(preempt, prev, next); }
TP_PAIR(sched_wakeup, sched_wakeup, on_sched_wakeup, struct task_struct *, p)
TP_PAIR(sched_waking, sched_waking, on_sched_waking, struct task_struct *, p)
TP_PAIR(sk_data_ready, sk_ready, on_sk_ready, const struct sock *, sk)
/* The packet hooks tell the body which flavour it runs in (typed or not). */
#define TP_PAIR_TYPED(tp, name, body, type, arg)                              \
	SEC("tp_btf/" #tp) int BPF_PROG(js_##name, type arg) { return body(arg, true); } \
	SEC("raw_tp/" #tp) int BPF_PROG(jsr_##name, type arg) { return body(arg, false); }

TP_PAIR_TYPED(netif_rx_entry, rx_arrive, on_backlog_arrival, const struct sk_buff *, skb)
TP_PAIR_TYPED(napi_gro_receive_entry, gro_arrive, on_napi_arrival, const struct sk_buff *, skb)
TP_PAIR_TYPED(netif_receive_skb_entry, rcv_arrive, on_backlog_arrival, const struct sk_buff *, skb)
TP_PAIR_TYPED(netif_receive_skb, skb_rcv, on_packet_receive, const struct sk_buff *, skb)
TP_PAIR_TYPED(netif_receive_skb, skb_late, on_late_packet, const struct sk_buff *, skb)
