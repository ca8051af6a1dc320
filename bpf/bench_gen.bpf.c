// SPDX-License-Identifier: GPL-2.0
/* Event generator for `npm run bench:pipeline`: each BPF_PROG_TEST_RUN of
 * bench_emit writes batch_size tracer-format events into its ring buffer, so
 * the addon and the TypeScript aggregation see exactly what the tracer sends. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#define JS_RING_BYTES (64 << 20)
#include "common.bpf.h"

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
