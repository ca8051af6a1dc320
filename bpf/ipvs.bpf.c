// SPDX-License-Identifier: GPL-2.0
/* ipvs_estimation: run time of each IPVS estimation_timer call (kernels before
 * 6.2), by fentry/fexit (module BTF) or kprobe/kretprobe. A separate object
 * from the tracer because ip_vs may be absent, or loaded and unloaded while
 * tracing: its programs only load when the function exists. The ring buffer
 * and drop counters are the tracer's, shared with bpf_map__reuse_fd(). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#define JS_RING_BYTES 4096 /* replaced by the tracer's ring */
#include "common.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* estimation_timer does not nest on a CPU: one start time per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} est_start SEC(".maps");

static __always_inline int on_entry(void)
{
	__u32 zero = 0;
	__u64 *t = bpf_map_lookup_elem(&est_start, &zero);
	if (t)
		*t = bpf_ktime_get_ns();
	return 0;
}

static __always_inline int on_exit(void)
{
	__u32 zero = 0;
	__u64 *t = bpf_map_lookup_elem(&est_start, &zero), now;
	struct js_event *e;
	if (!t || !*t)
		return 0;
	now = bpf_ktime_get_ns();
	e = reserve();
	if (e) {
		fill_run(e, JS_EV_FUNC, JS_FN_ESTIMATION_TIMER, *t, now, bpf_get_smp_processor_id());
		bpf_ringbuf_submit(e, 0); /* one every 2 s: wake the reader */
	}
	*t = 0;
	return 0;
}

SEC("fentry/estimation_timer") int BPF_PROG(jsf_est_entry) { return on_entry(); }
SEC("fexit/estimation_timer") int BPF_PROG(jsf_est_exit) { return on_exit(); }
SEC("kprobe/estimation_timer") int BPF_KPROBE(jsk_est_entry) { return on_entry(); }
SEC("kretprobe/estimation_timer") int BPF_KRETPROBE(jsk_est_exit) { return on_exit(); }
