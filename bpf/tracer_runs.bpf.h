/* The tracer's run hooks: softirqs (raise, entry, exit), timer_list and
 * hrtimer callbacks (and the pauses a late hard hrtimer reveals), and
 * net_rx_action by fentry/kprobe. */

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
	__u64 now, raise;
	if (vec >= JS_NR_SOFTIRQS || !cpu_wanted(bpf_get_smp_processor_id()))
		return 0;
	s = my_state();
	if (!s)
		return 0;
	/* the raise is read before the clock: interrupts are on here, and one
	 * between the two may raise the vector again (pending after the loop's
	 * snapshot, for the next round). With no raise kept, that one must not
	 * read as this run's (a wait below zero, seen once in the 6.1 guest), and
	 * it is kept for the round that runs it. */
	raise = s->raise_ns[vec];
	now = bpf_ktime_get_ns();
	s->entry_ns[vec] = now;
	s->wait_ns[vec] = raise && raise <= now ? now - raise : ~0ULL;
	if (s->raise_ns[vec] == raise)
		s->raise_ns[vec] = 0;
	if (vec == JS_NET_RX_SOFTIRQ) {
		s->napi_packets = 0;
		s->ready_sk = 0;
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
	wake_softirq(s, start, now);
	if (vec == JS_NET_RX_SOFTIRQ) {
		s->late_raise_ns = 0;
		ready_run_ends(s, cpu);
	}
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

