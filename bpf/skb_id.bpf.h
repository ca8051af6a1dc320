/* Packet identity without a helper call, shared by the tracer and the bench's
 * floor programs (bench_gen.bpf.c): an skb's address as a number, relative to
 * one of the program's own maps. */
#ifndef JITTERSCOPE_SKB_ID_BPF_H
#define JITTERSCOPE_SKB_ID_BPF_H

/* A pointer's bits as a number. Typed pointers (tp_btf, fentry) allow no
 * shifts or masks, but one pointer less another is a plain number to a program
 * that may see kernel addresses (CAP_PERFMON): the skb's address less a map's,
 * with no helper call. Untyped flavours (raw_tp, kprobe) hold the address as a
 * number already and subtract the same map's address, copied out through the
 * helper, so both flavours agree on every packet's id. */
static __always_inline __u64 ptr_less_typed(const void *p, const void *base)
{
	__u64 id;
	asm volatile("%[id] = %[p]\n\t"
		     "%[id] -= %[base]"
		     : [id] "=&r"(id)
		     : [p] "r"(p), [base] "r"(base));
	return id;
}

static __always_inline __u64 ptr_less_untyped(const void *p, const void *base)
{
	__u64 b = 0;
	bpf_probe_read_kernel(&b, sizeof(b), &base);
	return (__u64)p - b;
}

#endif
