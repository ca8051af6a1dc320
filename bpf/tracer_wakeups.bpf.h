/* The application's share: tasks woken by receive processing. A task woken
 * inside a NET_RX run (the softirq, ksoftirqd, or a NAPI thread) was woken,
 * almost always, because data or room arrived on one of its sockets. Its
 * wake-up is timed from sched_waking to its switch-in (a slow one streams),
 * and the run that follows is watched until it switches out: softirq time on
 * its CPU meanwhile was taken from it (a stolen run, when it reaches the
 * threshold). Every other wake-up costs one look at this CPU's state; every
 * other switch one look at the pending count of its CPU. The socket whose
 * data became ready just before the wake-up (sock:sk_data_ready on 6.3+, else
 * sock_def_readable by fentry or kprobe) names its flow.
 *
 * A task that is already awake when its data arrives (woken by its own timer,
 * another socket or thread, or preempted while busy) takes no wake-up there:
 * its data waits for it all the same. A data-ready that woke nobody in its
 * NET_RX run is looked up in sock_tasks (the task its data last woke): if that
 * task is runnable but not running, its wait runs from the data-ready to its
 * switch-in, timed as a wake-up's with JS_F_READY. */

static __always_inline bool in_net_rx(struct cpu_state *s)
{
	/* most wake-ups: no NET_RX run and no NAPI thread here (one cache line) */
	if (!s->entry_ns[JS_NET_RX_SOFTIRQ] && !s->thread_pid)
		return false;
	/* a hard hrtimer interrupting the NET_RX run wakes a sleeper, not a reader */
	if (s->hrt[0].start_ns)
		return false;
	if (s->entry_ns[JS_NET_RX_SOFTIRQ])
		return true;
	/* a NAPI thread's poll (threaded=1): the running thread is the one traced */
	return s->thread_pid == (__u32)bpf_get_current_pid_tgid();
}

/* No wake-up made for a CPU this long while its count says some are pending:
 * they were missed (their task ran on a CPU where no look was made, it exited,
 * or the LRU let it go), and the count starts again. A wake-up older than this
 * is not trusted either (a reused pid). */
#define WAKE_STALE_NS 1000000000ULL

/* Whether this kernel can look up another CPU's per-CPU element (5.19+): a
 * constant at load, so the verifier keeps one of the two paths below. */
#define JS_PERCPU_LOOKUP bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_map_lookup_percpu_elem)

/* The pending wake-ups of `cpu` (false: no state for it):
 * their count, since when, and the newest add. In the CPU's per-CPU state, or
 * the array before 5.19. */
struct pending {
	__s64 *count;
	__u64 *since;
	__u64 *last;
};

/* The fields in a CPU's state (5.19+). */
static __always_inline void pending_in(struct cpu_state *s, struct pending *p)
{
	p->count = &s->wake_count;
	p->since = &s->wake_since;
	p->last = &s->wake_last;
}

static __always_inline bool pending_of(__u32 cpu, struct pending *p)
{
	__u32 zero = 0;
	if (JS_PERCPU_LOOKUP) {
		struct cpu_state *s = bpf_map_lookup_percpu_elem(&state, &zero, cpu);
		if (!s)
			return false;
		pending_in(s, p);
		return true;
	}
	struct wake_count *c = bpf_map_lookup_elem(&wake_pending, &cpu);
	if (!c)
		return false;
	p->count = &c->count;
	p->since = &c->since;
	p->last = &c->last;
	return true;
}

static __always_inline void pending_add(__u32 cpu, __s64 n, __u64 now)
{
	struct pending c;
	if (!cpu_wanted(cpu) || !pending_of(cpu, &c))
		return;
	/* `since` before the add, so no look sees a count without it; the sum is
	 * not read back from the add (a fetching atomic needs 5.12, and the 5.10
	 * generation must load this object) */
	if (n > 0) {
		if (*c.count <= 0)
			*c.since = now;
		*c.last = now;
	}
	__sync_fetch_and_add(c.count, n);
	if (*c.count < 0) /* reset while they were pending */
		*c.count = 0;
}

/* Since when network wake-ups have been pending for this CPU (0: none): the
 * tasks that hold it meanwhile are what they wait for. `s` is this CPU's
 * state: from 5.19 the count is in its first cache line, read with the rest. */
static __always_inline __u64 wakes_pending_since(struct cpu_state *s, __u32 cpu)
{
	struct pending c;
	__u64 now, last;
	if (JS_PERCPU_LOOKUP) {
		if (s->wake_count <= 0)
			return 0;
		pending_in(s, &c);
	} else if (!pending_of(cpu, &c) || *c.count <= 0) {
		return 0;
	}
	/* `last` may be another CPU's add, made after this clock read */
	now = bpf_ktime_get_ns();
	last = *c.last;
	if (now > last && now - last > WAKE_STALE_NS) {
		*c.count = 0;
		return 0;
	}
	return *c.since;
}

/* A socket's flow as a packet to it reads: saddr/sport the peer (zero when
 * not connected), daddr/dport its own; proto 0 if not an IP socket. */
static __always_inline void sock_flow(const struct sock *sk, struct js_pkt *f, __u16 *flags)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family == 2 /* AF_INET */) {
		__be32 peer = BPF_CORE_READ(sk, __sk_common.skc_daddr), own = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__builtin_memcpy(f->saddr, &peer, 4);
		__builtin_memcpy(f->daddr, &own, 4);
	} else if (family == 10 /* AF_INET6 */) {
		BPF_CORE_READ_INTO(&f->saddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&f->daddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		*flags |= JS_F_IPV6;
	} else {
		return;
	}
	f->sport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	f->dport = BPF_CORE_READ(sk, __sk_common.skc_num);
	f->proto = BPF_CORE_READ(sk, sk_protocol);
}

/* The task state fields: `__state` from 5.14, `state` before. */
struct task_struct___old {
	long state;
} __attribute__((preserve_access_index));

/* Whether `p` is runnable but not running: queued on a run queue, waiting for its CPU. */
static __always_inline bool queued_not_running(struct task_struct *p)
{
	long st;
	if (bpf_core_field_exists(p->__state))
		st = BPF_CORE_READ(p, __state);
	else
		st = BPF_CORE_READ((struct task_struct___old *)p, state);
	return st == 0 /* TASK_RUNNING */ && BPF_CORE_READ(p, on_rq) == 1 /* TASK_ON_RQ_QUEUED */ && !BPF_CORE_READ(p, on_cpu);
}

/* A task's wait for its CPU begins now (woken inside a NET_RX run, or its data
 * ready while it was already runnable: `ready`), on `cpu`'s NET_RX run. */
static __always_inline void net_wait_begins(struct cpu_state *s, struct task_struct *p, __u32 cpu, const struct sock *sk, bool ready)
{
	struct net_wake w = {}, *old;
	__u32 pid = BPF_CORE_READ(p, pid);
	w.ts = bpf_ktime_get_ns();
	w.switches = BPF_CORE_READ(p, nvcsw) + BPF_CORE_READ(p, nivcsw);
	w.waker_cpu = cpu;
	w.guess_cpu = BPF_CORE_READ(p, wake_cpu);
	if (sk)
		sock_flow(sk, &w.flow, &w.flow_flags);
	if (ready)
		w.flow_flags |= JS_F_READY;
	/* woken again before it ran: its wait began at the first. An entry from
	 * before it last ran (it ran where no look was made) is replaced. */
	old = bpf_map_lookup_elem(&net_wakes, &pid);
	if (old) {
		if (old->switches == w.switches)
			return;
		/* its counts go with it */
		pending_add(old->guess_cpu, -1, 0);
		if (old->guess_cpu != old->waker_cpu)
			pending_add(old->waker_cpu, -1, 0);
	}
	bpf_map_update_elem(&net_wakes, &pid, &w, BPF_ANY);
	pending_add(w.guess_cpu, 1, w.ts);
	if (w.guess_cpu != cpu)
		pending_add(cpu, 1, w.ts);
}

/* Data became ready on `sk` in this NET_RX run and woke nobody: if the task its
 * data last woke is runnable but not running (already awake), the data waits
 * for it from now. Out of line: the path of a data-ready that wakes its task
 * stays a few loads long. */
static __noinline void ready_unwoken(struct cpu_state *s, __u32 cpu, __u64 sk)
{
	struct sock_task *t = bpf_map_lookup_elem(&sock_tasks, &sk);
	struct task_struct *p;
	if (!t)
		return;
	p = (struct task_struct *)t->task;
	/* the task exited and its memory went to another: not followed */
	if (BPF_CORE_READ(p, pid) != t->pid)
		return;
	if (queued_not_running(p))
		net_wait_begins(s, p, cpu, (const struct sock *)sk, true);
}

/* Data became ready on `sk` (before its waiters are woken): kept for them.
 * Only inside a NET_RX run (the only wake-ups followed); cleared as each run
 * starts. The data-ready before it that woke nobody is looked at now. */
static __always_inline int on_sk_ready(const struct sock *sk)
{
	struct cpu_state *s;
	__u32 cpu = bpf_get_smp_processor_id();
	if (!cpu_wanted(cpu))
		return 0;
	s = my_state();
	if (!s || !in_net_rx(s))
		return 0;
	if (s->ready_sk && s->ready_sk != (__u64)sk)
		ready_unwoken(s, cpu, s->ready_sk);
	s->ready_sk = (__u64)sk;
	return 0;
}

/* The NET_RX run ends: its last data-ready, if it woke nobody, is looked at. */
static __always_inline void ready_run_ends(struct cpu_state *s, __u32 cpu)
{
	if (s->ready_sk) {
		ready_unwoken(s, cpu, s->ready_sk);
		s->ready_sk = 0;
	}
}

/* The task its data woke, by socket: where a later data-ready that wakes
 * nobody looks (ready_unwoken). Written only when it changes. */
static __always_inline void sock_task_learn(__u64 sk, struct task_struct *p, __u32 pid)
{
	struct sock_task *t = bpf_map_lookup_elem(&sock_tasks, &sk), nt = {};
	if (t && t->pid == pid && t->task == (__u64)p)
		return;
	nt.task = (__u64)p;
	nt.pid = pid;
	bpf_map_update_elem(&sock_tasks, &sk, &nt, BPF_ANY);
}

static __always_inline int on_sched_waking(struct task_struct *p)
{
	struct cpu_state *s;
	__u32 cpu = bpf_get_smp_processor_id();
	__u64 sk;
	/* No cpu_wanted() here: on a CPU not traced no NET_RX run is entered and no
	 * NAPI thread is kept (those hooks look), so every wake-up leaves here */
	s = my_state();
	if (!s || !in_net_rx(s))
		return 0;
	if (BPF_CORE_READ(p, flags) & JS_PF_KTHREAD) /* ksoftirqd, kworkers: not an application */
		return 0;
	/* the socket is the first wake-up's after its data-ready: the one it woke
	 * (an epoll waiter, a reader); a later wake-up in the run takes no flow */
	sk = s->ready_sk;
	s->ready_sk = 0;
	if (sk)
		sock_task_learn(sk, p, BPF_CORE_READ(p, pid));
	net_wait_begins(s, p, cpu, (const struct sock *)sk, false);
	return 0;
}

/* How long `p`, switching in now, had been runnable: its run queue's clock
 * (reached through its CFS run queue, which knows its rq with
 * CONFIG_FAIR_GROUP_SCHED) less when it was queued (sched_info,
 * CONFIG_SCHED_INFO), as the scheduler's own delay accounting reads it just
 * after this. The scheduler skips its clock update on the switch that follows
 * a wake-up preemption, so the figure can read short: one below `at_least`
 * (it was runnable for all of its data's wait) is not known. 0: not known (a
 * kernel without either). */
static __always_inline __u64 queued_for(struct task_struct *p, __u64 at_least)
{
	struct cfs_rq *cfs;
	__u64 queued, clock;
	if (!bpf_core_field_exists(p->sched_info) || !bpf_core_field_exists(cfs->rq))
		return 0;
	cfs = BPF_CORE_READ(p, se.cfs_rq);
	if (!cfs)
		return 0;
	queued = BPF_CORE_READ(p, sched_info.last_queued);
	clock = BPF_CORE_READ(cfs, rq, clock);
	return queued && clock > queued && clock - queued >= at_least ? clock - queued : 0;
}

/* The flow of a wake-up about to stream, just before it (kind WAKE_FLOW). */
static __always_inline void emit_flow(__u16 flags, __u64 start, __u32 cpu, __u32 pid, const struct js_pkt *flow)
{
	struct js_event *e;
	if (!flow->proto || !(e = reserve()))
		return;
	e->start_ns = start;
	e->duration_ns = 0;
	e->key = pid;
	e->cpu = cpu;
	e->kind = JS_EV_WAKE_FLOW;
	e->flags = flags;
	__builtin_memcpy(&e->pkt, flow, sizeof(e->pkt));
	submit(e);
}

/* `taken`: the stolen time (JS_F_STOLEN) or the run-queue wait (JS_F_READY). */
static __always_inline void emit_wake(__u16 flags, __u64 start, __u64 duration, __u32 cpu, struct task_struct *t, __u64 taken, __u32 waker_cpu)
{
	struct js_event *e = reserve();
	if (!e)
		return;
	e->start_ns = start;
	e->duration_ns = duration;
	e->cpu = cpu;
	e->kind = JS_EV_WAKEUP;
	e->flags = flags;
	__builtin_memset(&e->wake, 0, sizeof(e->wake));
	BPF_CORE_READ_STR_INTO(&e->wake.comm, t, comm);
	e->wake.pid = BPF_CORE_READ(t, pid);
	e->wake.tgid = BPF_CORE_READ(t, tgid);
	e->key = e->wake.pid;
	e->wake.stolen_ns = taken;
	e->wake.waker_cpu = waker_cpu;
	submit(e);
}

/* The watched run of `prev` ended (it switches out): streamed as a stolen run
 * when softirqs took enough of it. Out of line, like the other rare paths of
 * a switch: the path every switch takes stays a few loads long. */
static __noinline void watch_ends(struct cpu_state *s, __u32 cpu, struct task_struct *prev)
{
	__u64 now, run;
	if (BPF_CORE_READ(prev, pid) != s->watch_pid)
		return;
	if (s->watch_stolen_ns >= wake_min_ns) {
		now = bpf_ktime_get_ns();
		run = now - s->watch_since_ns;
		emit_flow(JS_F_STOLEN | s->watch_flow_flags, s->watch_since_ns, cpu, s->watch_pid, &s->watch_flow);
		emit_wake(JS_F_STOLEN, s->watch_since_ns, run < stolen_cap_ns ? run : stolen_cap_ns, cpu, prev, s->watch_stolen_ns, 0);
	}
	s->watch_pid = 0;
}

/* Network wake-ups are pending for this CPU: is `next` one? Its wait ends,
 * and its run is watched from now. */
static __noinline void wake_arrives(struct cpu_state *s, __u32 cpu, struct task_struct *next)
{
	struct net_wake *w;
	__u64 now;
	__u32 pid = BPF_CORE_READ(next, pid);
	w = bpf_map_lookup_elem(&net_wakes, &pid);
	if (!w)
		return;
	struct net_wake seen = *w;
	bpf_map_delete_elem(&net_wakes, &pid);
	pending_add(seen.guess_cpu, -1, 0);
	if (seen.guess_cpu != seen.waker_cpu)
		pending_add(seen.waker_cpu, -1, 0);
	/* it ran since (on a CPU where no look was made): that wake-up is over */
	if (BPF_CORE_READ(next, nvcsw) + BPF_CORE_READ(next, nivcsw) != seen.switches)
		return;
	now = bpf_ktime_get_ns();
	if (now - seen.ts > WAKE_STALE_NS) /* left over, and the pid taken again */
		return;
	count_run(JS_KH_WAKEUP_WAIT, now - seen.ts, true);
	if (now - seen.ts >= wake_min_ns) {
		emit_flow(seen.flow_flags, seen.ts, cpu, pid, &seen.flow);
		emit_wake(seen.flow_flags & JS_F_READY, seen.ts, now - seen.ts, cpu, next, seen.flow_flags & JS_F_READY ? queued_for(next, now - seen.ts) : 0,
			  seen.waker_cpu);
	}
	s->watch_pid = pid;
	s->watch_since_ns = now;
	s->watch_stolen_ns = 0;
	s->watch_flow = seen.flow;
	s->watch_flow_flags = seen.flow_flags & JS_F_IPV6;
}

/* On every switch: the watched run of `prev` ends; `next` may be a network
 * wake-up (only looked up while some are pending for this CPU). */
static __always_inline void wake_switch(struct cpu_state *s, __u32 cpu, struct task_struct *prev, struct task_struct *next, __u64 pending_since)
{
	if (s->watch_pid)
		watch_ends(s, cpu, prev);
	if (pending_since)
		wake_arrives(s, cpu, next);
}

/* A softirq ran from start to now on this CPU: taken from the watched run, if any. */
static __always_inline void wake_softirq(struct cpu_state *s, __u64 start, __u64 now)
{
	if (s->watch_pid && start >= s->watch_since_ns && now - s->watch_since_ns <= stolen_cap_ns)
		s->watch_stolen_ns += now - start;
}
