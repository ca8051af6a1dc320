/* The tracer's packet hooks: where and when a packet arrived (backlog, or the
 * NET_RX raise of its NAPI poll), its wait at processing, its headers when it
 * streams, and serve's late-run hook. */

#define SKB_ID(skb, typed) ((typed) ? ptr_less_typed(skb, &arrivals) : ptr_less_untyped(skb, &arrivals))

static __always_inline __u32 arrival_slot(__u64 skb)
{
	return (__u32)((skb >> 8) ^ (skb >> 21)) & (ARRIVAL_SLOTS - 1);
}

/* A packet first seen now. `napi`: in a NAPI poll (napi_gro_receive), where it
 * has been waiting in the NIC's ring since before the poll: its wait starts at
 * the NET_RX raise that scheduled the poll (the interrupt), exactly for the
 * poll's first packet and as an upper bound for later ones. In a NAPI
 * thread's run the same holds from the thread's wakeup. Elsewhere (busy
 * polling) there is nothing to go by: first sighting. */
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
		} else if (s && s->thread_entry_ns) {
			ts = s->thread_wake_ns;
			flags = JS_F_NAPI | JS_F_THREADED | (s->napi_packets ? JS_F_WAIT_BOUND : 0);
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
	__u64 raise;
	if (!s)
		return 0;
	raise = s->late_raise_ns ? s->late_raise_ns : s->thread_late_ns;
	if (!raise)
		return 0;
	w.now = bpf_ktime_get_ns();
	w.start = raise;
	w.wait = w.now - w.start;
	w.cpu = w.arrival_cpu = bpf_get_smp_processor_id();
	w.flags = JS_F_LATE_RUN | (s->late_raise_ns ? 0 : JS_F_THREADED);
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

