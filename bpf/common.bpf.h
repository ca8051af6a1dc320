/* Shared by the BPF objects that emit events: the ring buffer, the per-CPU
 * drop counter, and filling a "one run of X" record. Each object decides its
 * own wakeup policy when it submits. */
#ifndef JITTERSCOPE_COMMON_BPF_H
#define JITTERSCOPE_COMMON_BPF_H

#include "jitterscope.h"

#ifndef JS_RING_BYTES
#define JS_RING_BYTES (8 << 20) /* user space resizes it, or reuses another object's */
#endif

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, JS_RING_BYTES);
} events SEC(".maps");

/* Events lost because the ring buffer was full, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

static __always_inline void count_drop(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&drops, &zero);
	if (n)
		*n += 1; /* per-CPU slot: no other writer */
}

/* A record from the ring, or NULL after counting the drop. */
static __always_inline struct js_event *reserve(void)
{
	struct js_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		count_drop();
	return e;
}

/* Fills a record for one run of something (a handler, a callback, a function). */
static __always_inline void fill_run(struct js_event *e, __u16 kind, __u64 key, __u64 start, __u64 now, __u32 cpu)
{
	e->start_ns = start;
	e->duration_ns = now - start;
	e->key = key;
	e->cpu = cpu;
	e->kind = kind;
	e->flags = 0;
	e->softirq.wait_ns = 0;
	e->softirq.reserved = 0;
}

#endif
