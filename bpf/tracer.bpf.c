// SPDX-License-Identifier: GPL-2.0
/* jitterscope tracer: softirq, timer callback and ICMP events from tracepoints.
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

/* Bytes one event takes in the ring: the record and its 8-byte header. */
#define JS_RECORD_BYTES (JS_EVENT_SIZE + 8)

/* Load-time settings, written through .rodata by user space. */
const volatile bool filter_cpus = false;
const volatile __u64 cpu_mask[JS_CPU_MASK_WORDS] = {};
/* Packets that waited at least this long are streamed with their flow. */
const volatile __u64 slow_packet_ns = 1000000;
/* Stream every ICMP and ICMPv6 packet too (ping matches replies by them). */
const volatile bool stream_icmp = true;
/* ICMP packets are reported from icmp_rcv (fentry/kprobe) instead of the
 * netif_receive_skb tracepoint. */
const volatile bool icmp_from_icmp_rcv = false;
/* 0: libbpf's adaptive wakeup on every submit. Otherwise wake the reader only
 * once this much data waits; user space also drains on a timer. Saves an
 * irq_work and a process wakeup per event. */
const volatile __u64 wakeup_bytes = 0;
/* Serve mode: softirq and net_rx_action runs shorter than stream_min_ns (and,
 * for softirqs, whose wait is shorter too) are counted in run_hists instead of
 * streamed; the longer ones still stream, so user space sees every stall. */
const volatile bool kernel_hists = false;
const volatile __u64 stream_min_ns = 0;
/* A hard CLOCK_MONOTONIC hrtimer that fires at least this late is a pause. */
const volatile __u64 pause_min_ns = 1000000;
/* A task that held a CPU this long while NET_RX waited there is streamed. */
const volatile __u64 task_min_ns = 300000;

struct hrtimer_slot {
	__u64 timer;
	__u64 start_ns;
	__u64 fn;
};

/* Per-CPU state: softirqs do not nest per vector, timer_list callbacks do not
 * nest, and a hard hrtimer can interrupt a soft one: two hrtimer slots. */
struct cpu_state {
	__u64 raise_ns[JS_NR_SOFTIRQS];
	__u64 entry_ns[JS_NR_SOFTIRQS];
	__u64 wait_ns[JS_NR_SOFTIRQS];
	__u64 timer;
	__u64 timer_start_ns;
	__u64 timer_fn;
	struct hrtimer_slot hrt[2];
	__u64 net_rx_action_ns;
	__u64 pause_end_ns; /* end of the last pause streamed */
	__u64 task_since_ns; /* while NET_RX is pending: when the current task's stretch began */
	__u64 late_raise_ns; /* the raise of the current NET_RX run, if it started late; else 0 */
	__u32 napi_packets;  /* packets first seen in NAPI polls of the current NET_RX run */
	bool net_rx_deferred; /* the current NET_RX run is ksoftirqd's */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_state);
} state SEC(".maps");

/* Where and when a packet was first seen, by skb address: a direct-mapped
 * table, not a hash map. An insert is one array slot write (a hash map
 * insert costs ~10x more); a collision overwrites an older packet, whose wait
 * then reads as unknown, which is counted. A packet handed on (RPS enqueue
 * after GRO) keeps its first arrival. */
struct arrival {
	__u64 skb;
	__u64 ts_ns;   /* when its wait began: first sighting, or its NAPI poll's NET_RX raise */
	__u64 seen_ns; /* first sighting, for telling a hand-off from a reused skb */
	__u32 cpu;
	__u16 flags;   /* JS_F_NAPI, JS_F_WAIT_BOUND */
	__u16 pad;
};

#define ARRIVAL_SLOTS 8192
#define HANDOFF_NS 1000000ULL

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ARRIVAL_SLOTS);
	__type(key, __u32);
	__type(value, struct arrival);
} arrivals SEC(".maps");

/* Every packet's wait, per CPU that processed it (see struct js_hist). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct js_hist);
} packet_wait SEC(".maps");

/* Serve mode's run histograms per CPU, by enum js_kernel_hist. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, JS_KH_COUNT);
	__type(key, __u32);
	__type(value, struct js_hist);
} run_hists SEC(".maps");

static __always_inline bool cpu_wanted(__u32 cpu)
{
	if (!filter_cpus)
		return true;
	if (cpu >= JS_MAX_CPUS)
		return false;
	return (cpu_mask[cpu / 64] >> (cpu % 64)) & 1;
}

static __always_inline struct cpu_state *my_state(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&state, &zero);
}

static __always_inline void submit(struct js_event *e)
{
	__u64 flags = 0, avail;
	if (wakeup_bytes) {
		/* Wake only as the waiting data crosses each multiple of
		 * wakeup_bytes: a reader that lags must not turn every later event
		 * into a forced wakeup (an IPI, microseconds in a VM). The reader's
		 * drain timer picks up anything a race lets slip past. */
		avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
		flags = avail >= wakeup_bytes && avail % wakeup_bytes < JS_RECORD_BYTES ? BPF_RB_FORCE_WAKEUP
											   : BPF_RB_NO_WAKEUP;
	}
	bpf_ringbuf_submit(e, flags);
}

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

static __always_inline void count_run(__u32 idx, __u64 v, bool known)
{
	struct js_hist *h = bpf_map_lookup_elem(&run_hists, &idx);
	if (h)
		hist_add(h, v, known);
}

/* ---- softirq ------------------------------------------------------------ */

static __always_inline int on_softirq_raise(unsigned int vec)
{
	struct cpu_state *s;
	if (vec >= JS_NR_SOFTIRQS || !cpu_wanted(bpf_get_smp_processor_id()))
		return 0;
	s = my_state();
	if (s && !s->raise_ns[vec]) /* keep the first raise until the vector runs */
		s->raise_ns[vec] = bpf_ktime_get_ns();
	return 0;
}

static __always_inline int on_softirq_entry(unsigned int vec)
{
	struct cpu_state *s;
	__u64 now;
	if (vec >= JS_NR_SOFTIRQS || !cpu_wanted(bpf_get_smp_processor_id()))
		return 0;
	s = my_state();
	if (!s)
		return 0;
	now = bpf_ktime_get_ns();
	s->entry_ns[vec] = now;
	s->wait_ns[vec] = s->raise_ns[vec] ? now - s->raise_ns[vec] : ~0ULL;
	s->raise_ns[vec] = 0;
	if (vec == JS_NET_RX_SOFTIRQ) {
		s->napi_packets = 0;
		s->task_since_ns = 0;
		/* a late run: was it handed to ksoftirqd? (only late runs pay for the look) */
		s->net_rx_deferred = false;
		s->late_raise_ns = 0;
		if (s->wait_ns[vec] != ~0ULL && s->wait_ns[vec] >= slow_packet_ns) {
			s->late_raise_ns = now - s->wait_ns[vec];
			char comm[16] = {};
			bpf_get_current_comm(comm, sizeof(comm));
			s->net_rx_deferred = comm[0] == 'k' && comm[1] == 's' && comm[2] == 'o' && comm[3] == 'f' && comm[4] == 't' &&
					     comm[5] == 'i' && comm[6] == 'r' && comm[7] == 'q' && comm[8] == 'd' && comm[9] == '/';
		}
	}
	return 0;
}

static __always_inline int on_softirq_exit(unsigned int vec)
{
	struct cpu_state *s;
	struct js_event *e;
	__u64 now, start, wait;
	__u32 cpu = bpf_get_smp_processor_id();
	if (vec >= JS_NR_SOFTIRQS || !cpu_wanted(cpu))
		return 0;
	s = my_state();
	if (!s || !s->entry_ns[vec])
		return 0; /* entry happened before we attached */
	now = bpf_ktime_get_ns();
	start = s->entry_ns[vec];
	wait = s->wait_ns[vec];
	s->entry_ns[vec] = 0;
	if (vec == JS_NET_RX_SOFTIRQ)
		s->late_raise_ns = 0;
	/* serve keeps short runs in the kernel; a NET_RX run that started late (a
	 * receive stall) always streams, whatever --stall-ms says */
	if (kernel_hists && now - start < stream_min_ns && (wait == ~0ULL || (wait < stream_min_ns && !(vec == JS_NET_RX_SOFTIRQ && wait >= slow_packet_ns)))) {
		count_run(JS_KH_SOFTIRQ_RUN + vec, now - start, true);
		count_run(JS_KH_SOFTIRQ_WAIT + vec, wait, wait != ~0ULL);
		return 0;
	}
	e = reserve();
	if (!e)
		return 0;
	fill_run(e, JS_EV_SOFTIRQ, vec, start, now, cpu);
	if (wait == ~0ULL)
		e->flags = JS_F_WAIT_UNKNOWN;
	else
		e->softirq.wait_ns = wait;
	if (vec == JS_NET_RX_SOFTIRQ && s->net_rx_deferred)
		e->flags |= JS_F_DEFERRED;
	submit(e);
	return 0;
}

/* ---- timer_list and hrtimer callbacks ----------------------------------- */

static __always_inline int on_timer_entry(struct timer_list *timer)
{
	struct cpu_state *s;
	if (!cpu_wanted(bpf_get_smp_processor_id()))
		return 0;
	s = my_state();
	if (!s)
		return 0;
	s->timer = (__u64)timer;
	s->timer_fn = (__u64)BPF_CORE_READ(timer, function);
	s->timer_start_ns = bpf_ktime_get_ns();
	return 0;
}

static __always_inline void emit_run(__u16 kind, __u64 key, __u64 start, __u64 now, __u32 cpu)
{
	struct js_event *e = reserve();
	if (!e)
		return;
	fill_run(e, kind, key, start, now, cpu);
	submit(e);
}

static __always_inline int on_timer_exit(struct timer_list *timer)
{
	struct cpu_state *s;
	__u32 cpu = bpf_get_smp_processor_id();
	if (!cpu_wanted(cpu))
		return 0;
	s = my_state();
	if (!s || s->timer != (__u64)timer || !s->timer_start_ns)
		return 0;
	emit_run(JS_EV_TIMER, s->timer_fn, s->timer_start_ns, bpf_ktime_get_ns(), cpu);
	s->timer = 0;
	s->timer_start_ns = 0;
	return 0;
}

static __always_inline int on_hrtimer_entry(struct hrtimer *timer)
{
	struct cpu_state *s;
	__u64 now, start;
	__s64 expires;
	int i;
	if (!cpu_wanted(bpf_get_smp_processor_id()))
		return 0;
	s = my_state();
	if (!s)
		return 0;
	/* user space attaches exits before entries, so a busy slot 0 is a
	 * timer this one interrupted, never a stale entry */
	i = s->hrt[0].start_ns ? 1 : 0;
	now = bpf_ktime_get_ns();
	s->hrt[i].timer = (__u64)timer;
	s->hrt[i].fn = (__u64)BPF_CORE_READ(timer, function);
	s->hrt[i].start_ns = now;
	/* A hard hrtimer runs from the timer interrupt, which interrupts softirqs
	 * too: firing well after its (hard) expiry means this CPU took no
	 * interrupt meanwhile. Soft ones wait for HRTIMER softirq, so their
	 * lateness is a softirq's, already timed; other clocks than
	 * CLOCK_MONOTONIC do not compare with bpf_ktime_get_ns(). */
	expires = BPF_CORE_READ(timer, node.expires);
	if (expires <= 0 || now < (__u64)expires + pause_min_ns)
		return 0;
	if (bpf_core_field_exists(timer->is_soft) && BPF_CORE_READ(timer, is_soft))
		return 0;
	if (BPF_CORE_READ(timer, base, clockid) != 1 /* CLOCK_MONOTONIC */)
		return 0;
	/* the timers one interrupt finds late share the pause: stream only what
	 * the last pause on this CPU did not cover, so pauses never overlap */
	start = (__u64)expires > s->pause_end_ns ? (__u64)expires : s->pause_end_ns;
	if (now < start + pause_min_ns)
		return 0;
	s->pause_end_ns = now;
	emit_run(JS_EV_PAUSE, s->hrt[i].fn, start, now, bpf_get_smp_processor_id());
	return 0;
}

static __always_inline int on_hrtimer_exit(struct hrtimer *timer)
{
	struct cpu_state *s;
	__u32 cpu = bpf_get_smp_processor_id();
	int i;
	if (!cpu_wanted(cpu))
		return 0;
	s = my_state();
	if (!s)
		return 0;
	/* the inner (interrupting) timer sits in slot 1 and exits first */
	if (s->hrt[1].start_ns && s->hrt[1].timer == (__u64)timer)
		i = 1;
	else if (s->hrt[0].start_ns && s->hrt[0].timer == (__u64)timer)
		i = 0;
	else
		return 0;
	emit_run(JS_EV_HRTIMER, s->hrt[i].fn, s->hrt[i].start_ns, bpf_ktime_get_ns(), cpu);
	s->hrt[i].start_ns = 0;
	s->hrt[i].timer = 0;
	return 0;
}

/* ---- packets ---------------------------------------------------------- */

/* A pointer's bits as a number. Typed pointers (tp_btf, fentry) allow no
 * shifts or masks, but one pointer less another is a plain number to a program
 * that may see kernel addresses (CAP_PERFMON): the skb's address less the
 * arrivals map's, with no helper call. Untyped flavours (raw_tp, kprobe) hold
 * the address as a number already and subtract the map's address, copied out
 * through the helper, so both flavours agree on every packet's id. */
static __always_inline __u64 skb_id_typed(const struct sk_buff *skb)
{
	__u64 id;
	asm volatile("%[id] = %[skb]\n\t"
		     "%[id] -= %[base]"
		     : [id] "=&r"(id)
		     : [skb] "r"(skb), [base] "r"(&arrivals));
	return id;
}

static __always_inline __u64 skb_id_untyped(const struct sk_buff *skb)
{
	const void *base = &arrivals;
	__u64 b = 0;
	bpf_probe_read_kernel(&b, sizeof(b), &base);
	return (__u64)skb - b;
}

#define SKB_ID(skb, typed) ((typed) ? skb_id_typed(skb) : skb_id_untyped(skb))

static __always_inline __u32 arrival_slot(__u64 skb)
{
	return (__u32)((skb >> 8) ^ (skb >> 21)) & (ARRIVAL_SLOTS - 1);
}

/* A packet first seen now. `napi`: in a NAPI poll (napi_gro_receive), where it
 * has been waiting in the NIC's ring since before the poll: its wait starts at
 * the NET_RX raise that scheduled the poll (the interrupt), exactly for the
 * poll's first packet and as an upper bound for later ones. Outside a NET_RX
 * run (threaded NAPI, busy polling) there is no raise to go by: first sighting. */
static __always_inline int on_packet_arrival(const struct sk_buff *skb, bool typed, bool napi)
{
	__u64 id = SKB_ID(skb, typed);
	__u32 slot = arrival_slot(id);
	struct arrival *a = bpf_map_lookup_elem(&arrivals, &slot);
	struct cpu_state *s;
	__u64 now, ts;
	__u16 flags = 0;
	if (!a)
		return 0;
	now = bpf_ktime_get_ns();
	/* the same skb seen again within HANDOFF_NS is one packet handed on (GRO
	 * then RPS): keep its first arrival. Older, it is a new packet in a reused
	 * skb whose predecessor left without being seen processed. */
	if (a->skb == id && now - a->seen_ns < HANDOFF_NS)
		return 0;
	ts = now;
	if (napi) {
		s = my_state();
		if (s && s->entry_ns[JS_NET_RX_SOFTIRQ] && s->wait_ns[JS_NET_RX_SOFTIRQ] != ~0ULL) {
			ts = s->entry_ns[JS_NET_RX_SOFTIRQ] - s->wait_ns[JS_NET_RX_SOFTIRQ];
			flags = JS_F_NAPI | (s->napi_packets ? JS_F_WAIT_BOUND : 0);
			s->napi_packets++;
		}
	}
	a->ts_ns = ts;
	a->seen_ns = now;
	a->cpu = bpf_get_smp_processor_id();
	a->flags = flags;
	a->skb = id;
	return 0;
}

static __always_inline int on_backlog_arrival(const struct sk_buff *skb, bool typed)
{
	return on_packet_arrival(skb, typed, false);
}

static __always_inline int on_napi_arrival(const struct sk_buff *skb, bool typed)
{
	return on_packet_arrival(skb, typed, true);
}

/* Headers at skb->data (the network header, at the net tracepoints) or at
 * head + network_header (anywhere). Fills the flow; false if not IP. */
static __always_inline bool parse_packet(unsigned char *l3, __u16 protocol, struct js_event *e)
{
	unsigned char *l4;
	__u8 proto;
	if (protocol == bpf_htons(0x0800 /* ETH_P_IP */)) {
		struct iphdr ip;
		if (bpf_probe_read_kernel(&ip, sizeof(ip), l3) || ip.version != 4 || ip.ihl < 5)
			return false;
		__builtin_memcpy(e->pkt.saddr, &ip.saddr, 4);
		__builtin_memcpy(e->pkt.daddr, &ip.daddr, 4);
		proto = ip.protocol;
		if (ip.frag_off & bpf_htons(0x1fff)) { /* not the first fragment: no ports */
			e->pkt.proto = proto;
			return true;
		}
		l4 = l3 + ip.ihl * 4;
	} else if (protocol == bpf_htons(0x86DD /* ETH_P_IPV6 */)) {
		struct ipv6hdr ip6;
		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), l3) || ip6.version != 6)
			return false;
		__builtin_memcpy(e->pkt.saddr, &ip6.saddr, 16);
		__builtin_memcpy(e->pkt.daddr, &ip6.daddr, 16);
		e->flags |= JS_F_IPV6;
		proto = ip6.nexthdr; /* extension headers are not walked: reported as their own number */
		l4 = l3 + sizeof(ip6);
	} else {
		return false;
	}
	e->pkt.proto = proto;
	if (proto == 6 /* TCP */ || proto == 17 /* UDP */) {
		__u16 ports[2];
		if (!bpf_probe_read_kernel(ports, sizeof(ports), l4)) {
			e->pkt.sport = bpf_ntohs(ports[0]);
			e->pkt.dport = bpf_ntohs(ports[1]);
		}
		if (proto == 6) {
			__u8 tcpflags;
			if (!bpf_probe_read_kernel(&tcpflags, 1, l4 + 13))
				e->pkt.type = tcpflags;
		}
	} else if (proto == 1 /* ICMP */ || proto == 58 /* ICMPv6 */) {
		struct icmphdr icmp;
		if (!bpf_probe_read_kernel(&icmp, sizeof(icmp), l4)) {
			e->pkt.type = icmp.type;
			e->pkt.code = icmp.code;
			e->pkt.sport = bpf_ntohs(icmp.un.echo.id); /* same place in ICMPv6 echo */
			e->pkt.dport = bpf_ntohs(icmp.un.echo.sequence);
		}
	}
	return true;
}

static __always_inline bool is_icmp(const struct js_event *e)
{
	return e->pkt.proto == 1 || e->pkt.proto == 58;
}

/* The IP protocol number of a packet, 0 if not IP (a cheap look for ICMP). */
static __always_inline __u8 l4_proto(unsigned char *l3, __u16 protocol)
{
	__u8 b = 0;
	if (protocol == bpf_htons(0x0800))
		bpf_probe_read_kernel(&b, 1, l3 + 9);
	else if (protocol == bpf_htons(0x86DD))
		bpf_probe_read_kernel(&b, 1, l3 + 6);
	return b;
}

struct seen {
	__u64 now, start, wait;
	__u32 cpu, arrival_cpu;
	__u16 flags; /* the arrival's JS_F_NAPI, JS_F_WAIT_BOUND */
	bool known;
};

/* When and where `skb` arrived; forgets it (the address will be reused). */
static __always_inline void take_arrival(const struct sk_buff *skb, bool typed, struct seen *w)
{
	__u64 id = SKB_ID(skb, typed);
	__u32 slot = arrival_slot(id);
	struct arrival *a = bpf_map_lookup_elem(&arrivals, &slot);
	w->now = w->start = bpf_ktime_get_ns();
	w->cpu = w->arrival_cpu = bpf_get_smp_processor_id();
	w->wait = 0;
	w->flags = 0;
	w->known = false;
	if (!a || a->skb != id)
		return;
	if (a->ts_ns <= w->now) {
		w->known = true;
		w->start = a->ts_ns;
		w->wait = w->now - a->ts_ns;
		w->arrival_cpu = a->cpu;
		w->flags = a->flags;
	}
	a->skb = 0;
}

/* tp_btf and fentry hand over a typed skb whose fields load directly (no
 * helper call); raw_tp and kprobe hand over a bare address, read through the
 * helper. `typed` is a constant in each program, so each keeps only its own
 * branch. */
#define SKB_FIELD(skb, field, typed) ((typed) ? (skb)->field : BPF_CORE_READ(skb, field))

/* The network header: at skb->data on the net tracepoints; at head +
 * network_header in icmp_rcv (skb->data is at the ICMP header by then). */
static __always_inline unsigned char *network_header(const struct sk_buff *skb, bool at_icmp_rcv, bool typed)
{
	if (at_icmp_rcv)
		return (unsigned char *)SKB_FIELD(skb, head, typed) + SKB_FIELD(skb, network_header, typed);
	return (unsigned char *)SKB_FIELD(skb, data, typed);
}

/* Counts the wait; streams the packet when slow, or when it is ICMP and
 * `want_icmp`. Packet headers are read only for a packet that may stream: a
 * packet that is neither slow nor wanted costs the histogram update alone. */
static __always_inline void packet_done(const struct sk_buff *skb, __u16 protocol, struct seen *w, bool want_icmp, bool at_icmp_rcv, bool typed)
{
	struct js_event *e;
	unsigned char *l3;
	__u32 zero = 0;
	struct js_hist *h;
	bool slow;
	if (!cpu_wanted(w->cpu) && !(w->known && cpu_wanted(w->arrival_cpu)))
		return;
	h = bpf_map_lookup_elem(&packet_wait, &zero);
	if (h)
		hist_add(h, w->wait, w->known);
	slow = w->known && w->wait >= slow_packet_ns;
	if (!slow && !want_icmp)
		return;
	l3 = network_header(skb, at_icmp_rcv, typed);
	if (!slow) {
		__u8 p = l4_proto(l3, protocol);
		if (p != 1 && p != 58)
			return;
	}
	e = reserve();
	if (!e)
		return;
	__builtin_memset(&e->pkt, 0, sizeof(e->pkt));
	e->start_ns = w->start;
	e->duration_ns = w->wait;
	e->key = BPF_CORE_READ(skb, dev, ifindex);
	e->cpu = w->cpu;
	e->kind = JS_EV_PACKET;
	e->flags = (w->known ? w->flags : JS_F_WAIT_UNKNOWN) | (slow ? JS_F_SLOW : 0);
	e->pkt.arrival_cpu = w->arrival_cpu;
	if (!parse_packet(l3, protocol, e) || (!slow && !is_icmp(e))) {
		bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
		return;
	}
	submit(e);
}

static __always_inline int on_packet_receive(const struct sk_buff *skb, bool typed)
{
	__u16 protocol = SKB_FIELD(skb, protocol, typed);
	struct seen w;
	/* with icmp_rcv traced, IPv4 ICMP is counted and reported there, wait included */
	if (icmp_from_icmp_rcv && protocol == bpf_htons(0x0800) && l4_proto(network_header(skb, false, typed), protocol) == 1)
		return 0;
	take_arrival(skb, typed, &w);
	packet_done(skb, protocol, &w, stream_icmp, false, typed);
	return 0;
}

/* serve: no arrival hook runs at all. A packet processed in a NET_RX run
 * that started late waited at least since that run's raise... at most: it may
 * have arrived after the raise (an upper bound, flagged). Any other packet
 * leaves at the first look: one map lookup and a compare. */
static __always_inline int on_late_packet(const struct sk_buff *skb, bool typed)
{
	struct cpu_state *s = my_state();
	struct seen w;
	if (!s || !s->late_raise_ns)
		return 0;
	w.now = bpf_ktime_get_ns();
	w.start = s->late_raise_ns;
	w.wait = w.now - w.start;
	w.cpu = w.arrival_cpu = bpf_get_smp_processor_id();
	w.flags = JS_F_LATE_RUN;
	w.known = true;
	packet_done(skb, SKB_FIELD(skb, protocol, typed), &w, false, false, typed);
	return 0;
}

static __always_inline int on_icmp_rcv(const struct sk_buff *skb, bool typed)
{
	struct seen w;
	take_arrival(skb, typed, &w);
	packet_done(skb, bpf_htons(0x0800), &w, stream_icmp, true, typed);
	return 0;
}

/* ---- tasks that hold a CPU while NET_RX waits ----------------------------- */

/* While NET_RX is pending on a CPU (raised, not yet run), each task that runs
 * there until it switches out is streamed with its stretch: when the run is
 * deferred to ksoftirqd (or NAPI runs in a thread), a task that keeps the CPU
 * is what the packets wait for. Outside that window a switch costs one look
 * at the pending raise. */
static __always_inline int on_sched_switch(struct task_struct *prev)
{
	struct cpu_state *s;
	struct js_event *e;
	__u64 raise, now, start;
	__u32 cpu = bpf_get_smp_processor_id(), pid;
	if (!cpu_wanted(cpu))
		return 0;
	s = my_state();
	if (!s)
		return 0;
	raise = s->raise_ns[JS_NET_RX_SOFTIRQ];
	if (!raise)
		return 0;
	now = bpf_ktime_get_ns();
	start = s->task_since_ns > raise ? s->task_since_ns : raise;
	s->task_since_ns = now;
	pid = BPF_CORE_READ(prev, pid);
	if (!pid || now - start < task_min_ns) /* the idle task waits for nothing */
		return 0;
	e = reserve();
	if (!e)
		return 0;
	fill_run(e, JS_EV_TASK, pid, start, now, cpu);
	__builtin_memset(&e->task, 0, sizeof(e->task));
	BPF_CORE_READ_STR_INTO(&e->task.comm, prev, comm);
	e->task.pid = pid;
	e->task.tgid = BPF_CORE_READ(prev, tgid);
	submit(e);
	return 0;
}

/* ---- net_rx_action by fentry/fexit or kprobe/kretprobe -------------------- */

static __always_inline int on_net_rx_action_entry(void)
{
	struct cpu_state *s;
	if (!cpu_wanted(bpf_get_smp_processor_id()))
		return 0;
	s = my_state();
	if (s)
		s->net_rx_action_ns = bpf_ktime_get_ns();
	return 0;
}

static __always_inline int on_net_rx_action_exit(void)
{
	struct cpu_state *s;
	__u64 now;
	__u32 cpu = bpf_get_smp_processor_id();
	if (!cpu_wanted(cpu))
		return 0;
	s = my_state();
	if (!s || !s->net_rx_action_ns)
		return 0;
	now = bpf_ktime_get_ns();
	if (kernel_hists && now - s->net_rx_action_ns < stream_min_ns)
		count_run(JS_KH_NET_RX_ACTION, now - s->net_rx_action_ns, true);
	else
		emit_run(JS_EV_FUNC, JS_FN_NET_RX_ACTION, s->net_rx_action_ns, now, cpu);
	s->net_rx_action_ns = 0;
	return 0;
}

/* Off unless user space picks them (autoload); names: jsf_ fentry, jsk_ kprobe. */
SEC("fentry/net_rx_action") int BPF_PROG(jsf_nra_entry) { return on_net_rx_action_entry(); }
SEC("fexit/net_rx_action") int BPF_PROG(jsf_nra_exit) { return on_net_rx_action_exit(); }
SEC("kprobe/net_rx_action") int BPF_KPROBE(jsk_nra_entry) { return on_net_rx_action_entry(); }
SEC("kretprobe/net_rx_action") int BPF_KRETPROBE(jsk_nra_exit) { return on_net_rx_action_exit(); }
SEC("fentry/icmp_rcv") int BPF_PROG(jsf_icmp_rcv, struct sk_buff *skb) { return on_icmp_rcv(skb, true); }
SEC("kprobe/icmp_rcv") int BPF_KPROBE(jsk_icmp_rcv, struct sk_buff *skb) { return on_icmp_rcv(skb, false); }

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
SEC("tp_btf/sched_switch") int BPF_PROG(js_sched_switch, bool preempt, struct task_struct *prev) { return on_sched_switch(prev); }
SEC("raw_tp/sched_switch") int BPF_PROG(jsr_sched_switch, bool preempt, struct task_struct *prev) { return on_sched_switch(prev); }
/* The packet hooks tell the body which flavour it runs in (typed or not). */
#define TP_PAIR_TYPED(tp, name, body, type, arg)                              \
	SEC("tp_btf/" #tp) int BPF_PROG(js_##name, type arg) { return body(arg, true); } \
	SEC("raw_tp/" #tp) int BPF_PROG(jsr_##name, type arg) { return body(arg, false); }

TP_PAIR_TYPED(netif_rx_entry, rx_arrive, on_backlog_arrival, const struct sk_buff *, skb)
TP_PAIR_TYPED(napi_gro_receive_entry, gro_arrive, on_napi_arrival, const struct sk_buff *, skb)
TP_PAIR_TYPED(netif_receive_skb_entry, rcv_arrive, on_backlog_arrival, const struct sk_buff *, skb)
TP_PAIR_TYPED(netif_receive_skb, skb_rcv, on_packet_receive, const struct sk_buff *, skb)
TP_PAIR_TYPED(netif_receive_skb, skb_late, on_late_packet, const struct sk_buff *, skb)
