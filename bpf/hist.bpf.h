/* The in-kernel histogram (struct js_hist in jitterscope.h): log2 buckets with
 * 4 linear sub-buckets, slots clamped to the last; what src/stream reads. */
#ifndef JITTERSCOPE_HIST_BPF_H
#define JITTERSCOPE_HIST_BPF_H

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0;
	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) r += 1;
	return r;
}

/* Counts one value (or, not `known`, one unknown) into a struct js_hist. */
static __always_inline void hist_add(struct js_hist *h, __u64 v, bool known)
{
	__u32 b;
	if (!known) {
		h->unknown++;
		return;
	}
	if (v < (1 << JS_HIST_SUB_BITS)) {
		b = v;
	} else {
		__u32 shift = log2_u64(v) - JS_HIST_SUB_BITS;
		b = shift * (1 << JS_HIST_SUB_BITS) + (__u32)(v >> shift);
	}
	if (b >= JS_HIST_BUCKETS)
		b = JS_HIST_BUCKETS - 1;
	barrier_var(b); /* keep the clamp where the verifier can see it */
	if (b < JS_HIST_BUCKETS)
		h->buckets[b]++;
	h->count++;
	h->sum_ns += v;
	if (v > h->max_ns)
		h->max_ns = v;
}


#endif
