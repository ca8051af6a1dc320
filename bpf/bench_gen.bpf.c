// SPDX-License-Identifier: GPL-2.0
/* Bench-only programs. The event generator for `npm run bench:pipeline` and
 * bench:soak: each BPF_PROG_TEST_RUN of bench_emit writes batch_size
 * tracer-format events into its ring buffer, so the addon and the TypeScript
 * aggregation see exactly what the tracer sends. And the cost floor that
 * `npm run bench:bpf-cost` prints beside the tracer's cost. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#define JS_RING_BYTES (64 << 20)
#include "common.bpf.h"
#include "skb_id.bpf.h"

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 batch_size = 1024;

struct gen_ctx {
	__u64 now;
	__u32 cpu;
	__u32 seed;
};

/* Cheap on purpose: the generator must outrun the consumer, so it reads the
 * clock once per run and draws numbers from a multiplicative hash of i. */
static long emit_one(__u64 i, void *ctx)
{
	struct gen_ctx *g = ctx;
	__u32 r = (__u32)(i * 2654435761u) ^ g->seed;
	struct js_event *e = reserve();
	if (!e)
		return 0;
	e->start_ns = g->now + i;
	e->cpu = g->cpu;
	e->flags = 0;
	if (i & 1) {
		e->kind = JS_EV_SOFTIRQ;
		e->key = r % JS_NR_SOFTIRQS;
		e->duration_ns = r >> 14; /* < 262 us: no stalls */
		e->softirq.wait_ns = r & 0xffff;
	} else {
		e->kind = (r & 2) ? JS_EV_TIMER : JS_EV_HRTIMER;
		/* 64 callbacks at addresses no kernel symbol has: shown as addresses */
		e->key = 0x5e5e0000ULL + (r & 0x3f) * 0x40;
		e->duration_ns = r >> 14;
		e->softirq.wait_ns = 0;
	}
	e->softirq.reserved = 0;
	/* wake the consumer once per batch, as the tracer does per wakeup_bytes */
	bpf_ringbuf_submit(e, i + 1 == batch_size ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	return 0;
}

SEC("syscall")
int bench_emit(void *ctx)
{
	struct gen_ctx g = {
		.now = bpf_ktime_get_ns(),
		.cpu = bpf_get_smp_processor_id(),
		.seed = bpf_get_prandom_u32(),
	};
	bpf_loop(batch_size, emit_one, &g, 0);
	return 0;
}

/* ---- the cost floor, for `npm run bench:bpf-cost` ----------------------
 * What any tracer pays on this machine, beside what the tracer pays: programs
 * that do nothing (bpf_stats' own clock reads and the call), and the least a
 * program can do to time each softirq and each packet exactly (one clock read
 * at each end, one per-CPU or per-packet slot). Off unless the bench asks. */

struct floor_cpu {
	__u64 start[16];
	__u64 sum, count;
	__u64 switch_busy; /* never set: floor_sched_switch only reads it */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct floor_cpu);
} floor_cpu SEC(".maps");

struct floor_slot {
	__u64 skb, ts;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct floor_slot);
} floor_packets SEC(".maps");

/* the tracer's own packet id (skb_id.bpf.h), relative to this object's map */
static __always_inline __u64 floor_skb_id(const struct sk_buff *skb)
{
	return ptr_less_typed(skb, &floor_packets);
}

SEC("tp_btf/softirq_entry") int BPF_PROG(empty_sirq_entry, unsigned int vec) { return 0; }
SEC("tp_btf/softirq_exit") int BPF_PROG(empty_sirq_exit, unsigned int vec) { return 0; }
SEC("tp_btf/netif_rx_entry") int BPF_PROG(empty_rx_arrive, const struct sk_buff *skb) { return 0; }
SEC("tp_btf/netif_receive_skb") int BPF_PROG(empty_skb_rcv, const struct sk_buff *skb) { return 0; }
SEC("tp_btf/sched_waking") int BPF_PROG(empty_sched_waking, struct task_struct *p) { return 0; }
SEC("tp_btf/sched_switch") int BPF_PROG(empty_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next) { return 0; }
SEC("tp_btf/sk_data_ready") int BPF_PROG(empty_sk_ready, const struct sock *sk) { return 0; }

/* the least a switch hook can do to learn whether this CPU has work for it:
 * one per-CPU word read (and nothing to do) */
SEC("tp_btf/sched_switch") int BPF_PROG(floor_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u32 zero = 0;
	struct floor_cpu *c = bpf_map_lookup_elem(&floor_cpu, &zero);
	if (c && c->switch_busy)
		c->count++;
	return 0;
}

/* what a switch hook that decides from the tasks alone pays: two fields of
 * each task switched, and no map (a map's memory, above, is a first touch
 * after a switch; these tasks the scheduler has just touched) */
SEC("tp_btf/sched_switch") int BPF_PROG(floor_task_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u32 zero = 0;
	struct floor_cpu *c;
	if (prev->pid != next->pid || prev->tgid != next->tgid)
		return 0;
	c = bpf_map_lookup_elem(&floor_cpu, &zero); /* never: a switch is between two tasks */
	if (c)
		c->count++;
	return 0;
}

/* the least any hook that decides anything can do: read its own arguments */
SEC("tp_btf/sched_switch") int BPF_PROG(floor_args_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u32 zero = 0;
	struct floor_cpu *c;
	if (!preempt || prev != next)
		return 0;
	c = bpf_map_lookup_elem(&floor_cpu, &zero); /* never: a switch is between two tasks */
	if (c)
		c->count++;
	return 0;
}

SEC("tp_btf/softirq_entry") int BPF_PROG(floor_sirq_entry, unsigned int vec)
{
	__u32 zero = 0;
	struct floor_cpu *c = bpf_map_lookup_elem(&floor_cpu, &zero);
	if (c)
		c->start[vec & 15] = bpf_ktime_get_ns();
	return 0;
}

SEC("tp_btf/softirq_exit") int BPF_PROG(floor_sirq_exit, unsigned int vec)
{
	__u32 zero = 0;
	struct floor_cpu *c = bpf_map_lookup_elem(&floor_cpu, &zero);
	if (c && c->start[vec & 15]) {
		c->sum += bpf_ktime_get_ns() - c->start[vec & 15];
		c->count++;
	}
	return 0;
}

SEC("tp_btf/netif_rx_entry") int BPF_PROG(floor_rx_arrive, const struct sk_buff *skb)
{
	__u64 id = floor_skb_id(skb);
	__u32 slot = (__u32)(id >> 8) & 8191;
	struct floor_slot *s = bpf_map_lookup_elem(&floor_packets, &slot);
	if (s) {
		s->skb = id;
		s->ts = bpf_ktime_get_ns();
	}
	return 0;
}

SEC("tp_btf/netif_receive_skb") int BPF_PROG(floor_skb_rcv, const struct sk_buff *skb)
{
	__u64 id = floor_skb_id(skb);
	__u32 slot = (__u32)(id >> 8) & 8191, zero = 0;
	struct floor_slot *s = bpf_map_lookup_elem(&floor_packets, &slot);
	struct floor_cpu *c = bpf_map_lookup_elem(&floor_cpu, &zero);
	if (s && c && s->skb == id) {
		c->sum += bpf_ktime_get_ns() - s->ts;
		c->count++;
	}
	return 0;
}
