// SPDX-License-Identifier: GPL-2.0
/* The lab stall: a bpf_timer whose callback busy-loops for stall_ns every
 * period_ns, in HRTIMER softirq context on the CPU that started it. It stands
 * in for IPVS's estimation_timer on kernels without IPVS, giving tests and
 * demos a culprit with a known CPU and duration. It measures its own runs.
 *
 * The lab pause (lab_irqs_off, loaded only when asked for): interrupts held
 * off on one CPU from inside the hard timer interrupt, which is what a host
 * pausing the vCPU looks like from inside the guest. Tests use it to make
 * pauses on demand on a machine whose host never pauses it. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u64 stall_ns = 15000000;
const volatile __u64 period_ns = 200000000;

struct stall_elem {
	struct bpf_timer timer;
	__u64 flags; /* bpf_timer_start's: BPF_F_TIMER_CPU_PIN where the kernel has it (6.7+), else 0 */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stall_elem);
} stall_timer SEC(".maps");

/* Layout mirrored by src/kernel/lab-stall.ts. */
struct stall_stats {
	__u64 runs;
	__u64 total_ns;
	__u64 max_ns;
	__u64 min_ns;
	__u64 last_start_ns;
	__u32 cpu;
	__u32 other_cpu_runs;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stall_stats);
} stall_stats SEC(".maps");

static long spin(__u64 i, void *ctx)
{
	return bpf_ktime_get_ns() >= *(__u64 *)ctx ? 1 : 0;
}

static int stall_cb(void *map, __u32 *key, struct stall_elem *el)
{
	__u32 zero = 0;
	struct stall_stats *st = bpf_map_lookup_elem(&stall_stats, &zero);
	__u64 start = bpf_ktime_get_ns(), deadline = start + stall_ns, took;
	__u32 cpu = bpf_get_smp_processor_id();

	bpf_loop(1 << 23, spin, &deadline, 0);
	took = bpf_ktime_get_ns() - start;
	if (st) {
		st->runs++;
		st->total_ns += took;
		if (took > st->max_ns)
			st->max_ns = took;
		if (!st->min_ns || took < st->min_ns)
			st->min_ns = took;
		st->last_start_ns = start;
		if (cpu != st->cpu)
			st->other_cpu_runs++;
	}
	bpf_timer_start(&el->timer, period_ns, el->flags);
	return 0;
}

/* Run with BPF_PROG_TEST_RUN from a thread pinned to the wanted CPU. */
SEC("syscall")
int lab_stall_start(void *ctx)
{
	__u32 zero = 0;
	struct stall_elem *el = bpf_map_lookup_elem(&stall_timer, &zero);
	struct stall_stats *st = bpf_map_lookup_elem(&stall_stats, &zero);

	if (!el || !st)
		return 1;
	st->cpu = bpf_get_smp_processor_id();
	bpf_timer_init(&el->timer, &stall_timer, 1 /* CLOCK_MONOTONIC */);
	bpf_timer_set_callback(&el->timer, stall_cb);
	el->flags = BPF_F_TIMER_CPU_PIN;
	if (!bpf_timer_start(&el->timer, period_ns, el->flags))
		return 0;
	/* before 6.7 no flags are allowed: the timer then stays on the CPU that
	 * armed it unless timer migration moves it (kernel.timer_migration=0
	 * keeps it; runs elsewhere are counted in other_cpu_runs) */
	el->flags = 0;
	return bpf_timer_start(&el->timer, period_ns, 0) ? 2 : 0;
}

const volatile __u64 irqs_off_ns = 0;
const volatile __u64 irqs_off_period_ns = 1000000000;
const volatile __u32 irqs_off_cpu = 1;

/* Layout mirrored by src/kernel/lab-stall.ts. */
struct irqs_off_stats {
	__u64 next_ns;
	__u64 runs;
	__u64 max_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct irqs_off_stats);
} irqs_off_stats SEC(".maps");

/* Before a hard hrtimer callback, in the timer interrupt with interrupts off:
 * spin, so that timer (and any due meanwhile) fires late, as after a host
 * pause. Attached before a tracer, it runs before the tracer's entry hook,
 * which then sees the whole spin as the timer's lateness. */
SEC("tp_btf/hrtimer_expire_entry")
int BPF_PROG(lab_irqs_off, struct hrtimer *timer)
{
	__u32 zero = 0;
	struct irqs_off_stats *st;
	__u64 now, deadline, took;

	if (bpf_get_smp_processor_id() != irqs_off_cpu)
		return 0;
	if (bpf_core_field_exists(timer->is_soft) && BPF_CORE_READ(timer, is_soft))
		return 0;
	st = bpf_map_lookup_elem(&irqs_off_stats, &zero);
	now = bpf_ktime_get_ns();
	if (!st || now < st->next_ns)
		return 0;
	st->next_ns = now + irqs_off_period_ns;
	deadline = now + irqs_off_ns;
	bpf_loop(1 << 23, spin, &deadline, 0);
	took = bpf_ktime_get_ns() - now;
	st->runs++;
	if (took > st->max_ns)
		st->max_ns = took;
	return 0;
}
