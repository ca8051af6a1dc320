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
const volatile bool trace_icmp = true;
/* ICMP packets are reported from icmp_rcv (fentry/kprobe) instead of the
 * netif_receive_skb tracepoint. */
const volatile bool icmp_from_icmp_rcv = false;
/* 0: libbpf's adaptive wakeup on every submit. Otherwise wake the reader only
 * once this much data waits; user space also drains on a timer. Saves an
 * irq_work and a process wakeup per event. */
const volatile __u64 wakeup_bytes = 0;

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
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_state);
} state SEC(".maps");

struct arrival {
	__u64 ts_ns;
	__u32 cpu;
	__u32 pad;
};

/* skb address -> when and where the packet entered the stack. LRU, because a
 * packet dropped before __netif_receive_skb never deletes its entry. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct arrival);
} arrivals SEC(".maps");

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
	return 0;
}

static __always_inline int on_softirq_exit(unsigned int vec)
{
	struct cpu_state *s;
	struct js_event *e;
	__u64 now, start;
	__u32 cpu = bpf_get_smp_processor_id();
	if (vec >= JS_NR_SOFTIRQS || !cpu_wanted(cpu))
		return 0;
	s = my_state();
	if (!s || !s->entry_ns[vec])
		return 0; /* entry happened before we attached */
	now = bpf_ktime_get_ns();
	start = s->entry_ns[vec];
	s->entry_ns[vec] = 0;
	e = reserve();
	if (!e)
		return 0;
	fill_run(e, JS_EV_SOFTIRQ, vec, start, now, cpu);
	if (s->wait_ns[vec] == ~0ULL)
		e->flags = JS_F_WAIT_UNKNOWN;
	else
		e->softirq.wait_ns = s->wait_ns[vec];
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
	int i;
	if (!cpu_wanted(bpf_get_smp_processor_id()))
		return 0;
	s = my_state();
	if (!s)
		return 0;
	/* user space attaches exits before entries, so a busy slot 0 is a
	 * timer this one interrupted, never a stale entry */
	i = s->hrt[0].start_ns ? 1 : 0;
	s->hrt[i].timer = (__u64)timer;
	s->hrt[i].fn = (__u64)BPF_CORE_READ(timer, function);
	s->hrt[i].start_ns = bpf_ktime_get_ns();
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

/* ---- ICMP ----------------------------------------------------------------- */

struct icmp_hdrs {
	__u32 saddr, daddr;
	__u16 id, seq;
	__u8 type, code;
};

/* At the net tracepoints skb->data points at the IPv4 header (eth_type_trans
 * has pulled the link header). Returns false for anything but IPv4 ICMP. */
static __always_inline bool parse_icmp(const struct sk_buff *skb, struct icmp_hdrs *out)
{
	struct iphdr ip;
	struct icmphdr icmp;
	unsigned char *data;

	if (BPF_CORE_READ(skb, protocol) != bpf_htons(0x0800 /* ETH_P_IP */))
		return false;
	data = BPF_CORE_READ(skb, data);
	if (bpf_probe_read_kernel(&ip, sizeof(ip), data))
		return false;
	if (ip.version != 4 || ip.ihl < 5 || ip.protocol != 1 /* IPPROTO_ICMP */)
		return false;
	if (ip.frag_off & bpf_htons(0x1fff)) /* not the first fragment */
		return false;
	if (bpf_probe_read_kernel(&icmp, sizeof(icmp), data + ip.ihl * 4))
		return false;
	out->saddr = ip.saddr;
	out->daddr = ip.daddr;
	out->type = icmp.type;
	out->code = icmp.code;
	out->id = bpf_ntohs(icmp.un.echo.id);
	out->seq = bpf_ntohs(icmp.un.echo.sequence);
	return true;
}

static __always_inline int on_packet_arrival(const struct sk_buff *skb)
{
	struct icmp_hdrs h;
	struct arrival a = {};
	__u64 key = (__u64)skb;

	if (!trace_icmp || !parse_icmp(skb, &h))
		return 0;
	/* a packet handed on (e.g. RPS enqueue after GRO) keeps its first arrival */
	if (bpf_map_lookup_elem(&arrivals, &key))
		return 0;
	a.ts_ns = bpf_ktime_get_ns();
	a.cpu = bpf_get_smp_processor_id();
	bpf_map_update_elem(&arrivals, &key, &a, BPF_ANY);
	return 0;
}

static __always_inline int emit_icmp(const struct sk_buff *skb, struct icmp_hdrs *hp);

static __always_inline int on_packet_receive(const struct sk_buff *skb)
{
	struct icmp_hdrs h;

	if (!trace_icmp || icmp_from_icmp_rcv || !parse_icmp(skb, &h))
		return 0;
	return emit_icmp(skb, &h);
}

/* Reports one ICMP packet as processed now on this CPU, with its arrival. */
static __always_inline int emit_icmp(const struct sk_buff *skb, struct icmp_hdrs *hp)
{
	struct icmp_hdrs h = *hp;
	struct arrival *a;
	struct js_event *e;
	__u64 key = (__u64)skb, now;
	__u32 cpu = bpf_get_smp_processor_id();

	now = bpf_ktime_get_ns();
	a = bpf_map_lookup_elem(&arrivals, &key);
	if (!cpu_wanted(cpu) && !(a && cpu_wanted(a->cpu))) {
		if (a)
			bpf_map_delete_elem(&arrivals, &key);
		return 0;
	}
	e = reserve();
	if (e) {
		e->cpu = cpu;
		e->kind = JS_EV_ICMP;
		e->key = BPF_CORE_READ(skb, dev, ifindex);
		if (a && a->ts_ns <= now) {
			e->start_ns = a->ts_ns;
			e->duration_ns = now - a->ts_ns;
			e->icmp.arrival_cpu = a->cpu;
			e->flags = 0;
		} else {
			e->start_ns = now;
			e->duration_ns = 0;
			e->icmp.arrival_cpu = cpu;
			e->flags = JS_F_WAIT_UNKNOWN;
		}
		e->icmp.saddr = h.saddr;
		e->icmp.daddr = h.daddr;
		e->icmp.id = h.id;
		e->icmp.seq = h.seq;
		e->icmp.type = h.type;
		e->icmp.code = h.code;
		submit(e);
	}
	if (a)
		bpf_map_delete_elem(&arrivals, &key);
	return 0;
}

/* At icmp_rcv the IP header is at head + network_header and skb->data at the
 * ICMP header. */
static __always_inline int on_icmp_rcv(const struct sk_buff *skb)
{
	struct icmp_hdrs h;
	struct iphdr ip;
	struct icmphdr icmp;
	unsigned char *head;
	__u16 nh;

	if (!trace_icmp)
		return 0;
	head = BPF_CORE_READ(skb, head);
	nh = BPF_CORE_READ(skb, network_header);
	if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh) || ip.version != 4)
		return 0;
	if (bpf_probe_read_kernel(&icmp, sizeof(icmp), BPF_CORE_READ(skb, data)))
		return 0;
	h.saddr = ip.saddr;
	h.daddr = ip.daddr;
	h.type = icmp.type;
	h.code = icmp.code;
	h.id = bpf_ntohs(icmp.un.echo.id);
	h.seq = bpf_ntohs(icmp.un.echo.sequence);
	return emit_icmp(skb, &h);
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
	__u32 cpu = bpf_get_smp_processor_id();
	if (!cpu_wanted(cpu))
		return 0;
	s = my_state();
	if (!s || !s->net_rx_action_ns)
		return 0;
	emit_run(JS_EV_FUNC, JS_FN_NET_RX_ACTION, s->net_rx_action_ns, bpf_ktime_get_ns(), cpu);
	s->net_rx_action_ns = 0;
	return 0;
}

/* Off unless user space picks them (autoload); names: jsf_ fentry, jsk_ kprobe. */
SEC("fentry/net_rx_action") int BPF_PROG(jsf_nra_entry) { return on_net_rx_action_entry(); }
SEC("fexit/net_rx_action") int BPF_PROG(jsf_nra_exit) { return on_net_rx_action_exit(); }
SEC("kprobe/net_rx_action") int BPF_KPROBE(jsk_nra_entry) { return on_net_rx_action_entry(); }
SEC("kretprobe/net_rx_action") int BPF_KRETPROBE(jsk_nra_exit) { return on_net_rx_action_exit(); }
SEC("fentry/icmp_rcv") int BPF_PROG(jsf_icmp_rcv, struct sk_buff *skb) { return on_icmp_rcv(skb); }
SEC("kprobe/icmp_rcv") int BPF_KPROBE(jsk_icmp_rcv, struct sk_buff *skb) { return on_icmp_rcv(skb); }

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
TP_PAIR(netif_rx_entry, rx_arrive, on_packet_arrival, const struct sk_buff *, skb)
TP_PAIR(napi_gro_receive_entry, gro_arrive, on_packet_arrival, const struct sk_buff *, skb)
TP_PAIR(netif_receive_skb_entry, rcv_arrive, on_packet_arrival, const struct sk_buff *, skb)
TP_PAIR(netif_receive_skb, skb_rcv, on_packet_receive, const struct sk_buff *, skb)
