/* The tracer's scheduler hooks: NAPI threads (threaded=1) from wakeup to run,
 * and the tasks that hold a CPU while receive processing waits there (NET_RX
 * raised and not yet run, or a NAPI thread woken and not yet running). */

static __always_inline bool is_napi_thread(struct task_struct *p)
{
	char c[5];
	if (!(BPF_CORE_READ(p, flags) & JS_PF_KTHREAD))
		return false;
	if (bpf_core_read(c, sizeof(c), &p->comm))
		return false;
	return c[0] == 'n' && c[1] == 'a' && c[2] == 'p' && c[3] == 'i' && c[4] == '/';
}

/* A task woke. A NAPI thread (an interrupt scheduled its poll) starts
 * waiting now, for the CPU the scheduler picked. */
/* A NAPI thread starts waiting at `now` for `cpu`. */
static __always_inline void napi_wait(__u32 pid, __u32 cpu, __u64 now)
{
	struct napi_wake w = { .ts = now, .cpu = cpu };
	__u64 *pending;
	bpf_map_update_elem(&napi_wakes, &pid, &w, BPF_ANY);
	pending = bpf_map_lookup_elem(&napi_pending, &cpu);
	if (pending && !*pending)
		*pending = now;
}

/* Nothing waits for `cpu` any more (its NAPI thread runs, there or elsewhere). */
static __always_inline void napi_unpend(__u32 cpu)
{
	__u64 *pending = bpf_map_lookup_elem(&napi_pending, &cpu);
	if (pending)
		*pending = 0;
}

static __always_inline int on_sched_wakeup(struct task_struct *p)
{
	__u32 cpu;
	if (!napi_threads || !is_napi_thread(p))
		return 0;
	cpu = BPF_CORE_READ(p, wake_cpu);
	if (cpu_wanted(cpu))
		napi_wait(BPF_CORE_READ(p, pid), cpu, bpf_ktime_get_ns());
	return 0;
}

/* A NAPI thread's run ended (it slept, or was preempted): stream it when it
 * started late, as a NET_RX run flagged THREADED (a receive stall). */
static __noinline void napi_thread_out(struct cpu_state *s, __u64 now, __u32 cpu, __u32 pid, bool preempt)
{
	__u64 wait = s->thread_entry_ns - s->thread_wake_ns;
	struct js_event *e;
	if (wait >= slow_packet_ns && (e = reserve())) {
		fill_run(e, JS_EV_SOFTIRQ, JS_NET_RX_SOFTIRQ, s->thread_entry_ns, now, cpu);
		e->softirq.wait_ns = wait;
		e->flags = JS_F_THREADED;
		e->softirq.thread_pid = pid;
		submit(e);
	}
	s->thread_pid = 0;
	s->thread_entry_ns = 0;
	s->thread_late_ns = 0;
	if (!preempt) {
		/* it sleeps: a wakeup seen while it still ran (before it
		 * could sleep) was not a wait */
		bpf_map_delete_elem(&napi_wakes, &pid);
		napi_unpend(cpu);
		return;
	}
	/* preempted mid-poll: its packets wait again from now, on this CPU */
	napi_wait(pid, cpu, now);
}

/* A NAPI thread woken earlier runs now: its wait to run ends. */
static __noinline void napi_thread_in(struct cpu_state *s, __u64 now, __u32 cpu, struct task_struct *next)
{
	__u32 pid = BPF_CORE_READ(next, pid);
	struct napi_wake *w = bpf_map_lookup_elem(&napi_wakes, &pid);
	if (!w)
		return;
	s->thread_pid = pid;
	s->thread_wake_ns = w->ts;
	s->thread_entry_ns = now;
	s->thread_late_ns = now - w->ts >= slow_packet_ns ? w->ts : 0;
	s->napi_packets = 0;
	s->ready_sk = 0;
	/* the CPU it waited for (it may run elsewhere: migrated) and this one wait no more */
	napi_unpend(w->cpu);
	napi_unpend(cpu);
	bpf_map_delete_elem(&napi_wakes, &pid);
}

/* While receive processing is pending on a CPU (or a task it woke waits to
 * run there), each task that runs there until it switches out is streamed
 * with its stretch: when the run is deferred to ksoftirqd or a NAPI thread, a
 * task that keeps the CPU is what the packets wait for, and what the woken
 * task waits for. Outside that window a switch costs a look at the pending
 * raise and wake-ups. */
static __noinline void task_held(struct cpu_state *s, __u64 raise, __u64 now, __u32 cpu, struct task_struct *prev)
{
	struct js_event *e;
	__u64 start = s->task_since_ns > raise ? s->task_since_ns : raise;
	__u32 pid;
	s->task_since_ns = now;
	pid = BPF_CORE_READ(prev, pid);
	if (!pid || now - start < task_min_ns) /* the idle task waits for nothing */
		return;
	e = reserve();
	if (!e)
		return;
	fill_run(e, JS_EV_TASK, pid, start, now, cpu);
	__builtin_memset(&e->task, 0, sizeof(e->task));
	BPF_CORE_READ_STR_INTO(&e->task.comm, prev, comm);
	e->task.pid = pid;
	e->task.tgid = BPF_CORE_READ(prev, tgid);
	submit(e);
}

/* A switch with nothing to do on this CPU: no NAPI threads traced, no
 * watched run, NET_RX not pending, no network wake-up pending. All in the
 * state's first cache line (from 5.19; the array's count before). */
static __always_inline bool switch_quiet(struct cpu_state *s)
{
	struct pending c;
	if (napi_threads || s->watch_pid || s->raise_ns[JS_NET_RX_SOFTIRQ])
		return false;
	if (JS_PERCPU_LOOKUP)
		return s->wake_count <= 0;
	return !pending_of(bpf_get_smp_processor_id(), &c) || *c.count <= 0;
}

/* Every other switch: what it ends and begins. */
static __noinline int switch_busy(struct cpu_state *s, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u64 raise, now, *pending, woken;
	__u32 cpu = bpf_get_smp_processor_id();
	if (!s)
		return 0;
	woken = wakes_pending_since(s, cpu);
	wake_switch(s, cpu, prev, next, woken);
	raise = s->raise_ns[JS_NET_RX_SOFTIRQ];
	/* what prev held up: receive processing, or tasks woken by it, from the earlier */
	if (woken && (!raise || woken < raise))
		raise = woken;
	if (!napi_threads) {
		if (raise)
			task_held(s, raise, bpf_ktime_get_ns(), cpu, prev);
		return 0;
	}
	now = bpf_ktime_get_ns();
	pending = bpf_map_lookup_elem(&napi_pending, &cpu);
	if (pending && *pending && (!raise || *pending < raise))
		raise = *pending;
	/* what `prev` held up first, then the NAPI thread's wait ends or begins */
	if (raise)
		task_held(s, raise, now, cpu, prev);
	if (s->thread_pid && BPF_CORE_READ(prev, pid) == s->thread_pid)
		napi_thread_out(s, now, cpu, s->thread_pid, preempt);
	if (cpu_wanted(cpu) && is_napi_thread(next))
		napi_thread_in(s, now, cpu, next);
	return 0;
}

/* No cpu_wanted() here: on a CPU not traced nothing is ever pending, raised
 * or watched (those hooks look), so the quiet path is the same few loads and
 * no look at the settings is added to every switch. */
static __always_inline int on_sched_switch(bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct cpu_state *s = my_state();
	if (!s || switch_quiet(s))
		return 0;
	return switch_busy(s, preempt, prev, next);
}
